"""A custom worker (worker.command) that trains nothing: it writes a metric computed from the
config (deterministic, with a clear optimum in learning_rate) so that campaigns through the real
daemon run in seconds on a shared CPU. Used by the agent campaign tests and scripts/soak_agents.py."""

import json
import math
import os
import sys

import yaml

run = sys.argv[-1]
config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
lr = float(config.get("learning_rate", 1e-3))
metric = 0.9 - 0.08 * abs(math.log10(lr) + 3.3) - 0.2 * abs(float(config.get("dropout", 0.1)) - 0.15)
metric += {"attention": 0.02, "mean": 0.01}.get(config.get("pooling"), 0.0)
effective = dict(config)
effective["sequence"] = {"train": {"seq_len": config["seq_len"]}, "eval": {"val": {"seq_len": config["seq_len"]}}}
m = {"metric_name": "val_ap", "metric": round(metric, 6), "test_metric": 0.1,
     "selection": {"split": "val", "best_epoch": 1}, "history": [{"val_ap": metric}], "epochs_run": 1}
json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
json.dump(m, open(os.path.join(run, "metrics.json"), "w"))
