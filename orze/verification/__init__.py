"""Behavioural verification shared by the worker (which observes) and the daemon (which judges).

- `reference`: the fixed probe inputs and the reference formulas (losses, pooling, schedulers),
  in plain Python, with no torch: the daemon evaluates them itself.
- `metric`: the metric's specification (name, history key, range, direction) and the metric
  integrity checks every worker's output must pass.
- `behaviour`: the checks over the built-in worker's behavioural evidence.

Everything here is pure: functions over plain data (configs, effective_config.json, metrics.json,
the daemon's own expectations) returning findings and the names of the checks that passed.
"""
