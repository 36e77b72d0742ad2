"""One experiment as a job: run it, and turn any failure into failure.json.

Shared by both ways a worker runs (a process per experiment, `python -m orze.worker`, and a warm
per-slot process, `python -m orze.worker.warm`), so an experiment records the same files and the
same failure classes whichever ran it. Returns the worker's exit status: 0 when metrics.json was
written, 3 when failure.json names the failure class (invalid_config, missing_features, nan_loss,
oom, shape_mismatch, crash).
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from orze.layout import RUN_FAILURE, Layout
from orze.store.atomic import atomic_write_json

FAILED = 3


def run_job(run_dir: Path, layout: Layout, device: str | None = None, claimed_at: float | None = None,
            cache=None, worker: dict[str, Any] | None = None, notify=None) -> int:
    from orze.worker.fence import lease_from_env, watching
    from orze.worker.train import classify_exception, run_experiment
    try:
        with watching(run_dir, lease_from_env()):   # a lapsed lease ends this execution (fence.py)
            run_experiment(run_dir, layout, device, claimed_at=claimed_at, cache=cache, worker=worker,
                           notify=notify)
    except Exception as exc:  # every failure is recorded with its class, never silently lost
        failure = {"class": classify_exception(exc), "message": str(exc)[:2000],
                   "traceback": traceback.format_exc()[-4000:]}
        atomic_write_json(Path(run_dir) / RUN_FAILURE, failure)
        print(f"orze worker: {failure['class']}: {failure['message']}", file=sys.stderr, flush=True)
        return FAILED
    return 0
