"""A custom worker (worker.command) that speaks the pruning file protocol (docs/pruning.md)
without training: its curve is a deterministic function of the learning rate, one epoch every
EPOCH_S seconds. After each epoch it appends {"epoch", "val_ap"} to progress.jsonl and stops if
prune.json is there, writing metrics.json over the epochs it completed with `pruned`. With
PROGRESS_WORKER_AWAIT=1 it uses orze.worker.progress.ProgressReporter instead, which also awaits
the daemon's verdict (judged.json) at each epoch the rule may prune at."""

import json
import math
import os
import sys
import time

import yaml

from orze.features.store import SPLITS, read_clips, split_hash

EPOCH_S = float(os.environ.get("PROGRESS_WORKER_EPOCH_S", "0.25"))
AWAIT = os.environ.get("PROGRESS_WORKER_AWAIT") == "1"
run = sys.argv[-1]
config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
quality = 0.9 - 0.15 * abs(math.log10(float(config["learning_rate"])) + 3)
history, pruned = [], None
epochs = int(config["epochs"])
reporter = None
if AWAIT:
    from orze.worker.progress import ProgressReporter
    reporter = ProgressReporter(run)
for epoch in range(1, epochs + 1):
    time.sleep(EPOCH_S)
    value = round(quality * (1 - 0.5 ** epoch), 6)
    history.append({"epoch": epoch, "val_ap": value, "seconds": EPOCH_S})
    print(f"epoch {epoch} val_ap={value}", flush=True)
    if reporter is not None:
        if reporter.epoch(history[-1], last=epoch == epochs):
            pruned = {"stopped_after_epoch": epoch}
            break
        continue
    with open(os.path.join(run, "progress.jsonl"), "a") as f:
        f.write(json.dumps(history[-1]) + "\n")
    if os.path.exists(os.path.join(run, "prune.json")):
        pruned = {"stopped_after_epoch": epoch}
        break
best = max(range(len(history)), key=lambda i: history[i]["val_ap"])
effective = dict(config)
clips = read_clips(os.path.join(run, "..", "..", "..", "features", "clips.csv"))
effective["split_hashes"] = {s: split_hash([c.clip_id for c in clips if c.split == s]) for s in SPLITS}
effective["sequence"] = {"train": {"seq_len": config["seq_len"]}, "eval": {"val": {"seq_len": config["seq_len"]}}}
metrics = {"metric_name": "val_ap", "metric": history[best]["val_ap"], "test_metric": 0.1,
           "selection": {"split": "val", "best_epoch": best + 1}, "history": history,
           "epochs_run": len(history), "seconds_per_epoch": EPOCH_S, "pruned": pruned,
           "timings": {"verdict_wait_s": reporter.waited_s if reporter else 0.0}}
json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
json.dump(metrics, open(os.path.join(run, "metrics.json"), "w"))
