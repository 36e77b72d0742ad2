"""The worker: trains one experiment from its run directory and writes metrics.json and
effective_config.json. `python -m orze.worker runs/exp/<id>`."""
