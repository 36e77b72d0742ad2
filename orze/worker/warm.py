"""`python -m orze.worker.warm`: a long-lived worker for one slot (worker mode `warm`).

It imports torch and the training code once, initialises the slot's device, keeps a feature
cache (orze.worker.cache) across experiments, and then runs jobs the daemon sends it, one at a
time, with exactly the code a cold worker runs (orze.worker.job), so results do not depend on the
mode: every experiment re-seeds every generator and builds its model, optimiser and sampler anew.

Protocol (one JSON object per line; orze.daemon.warm is the other end):
    stdin   jobs     {"run_dir": ..., "root": ..., "claimed_at": <unix time>, "device": null}
    fd 1    events   {"event": "ready", "pid", "import_s", "device"}
                     {"event": "progress", "run_dir", "epoch"}   (after each epoch: the daemon judges it now)
                     {"event": "done", "run_dir", "code", "rss_mb", "jobs", "retire": null | reason}
While a job runs, the process's stdout and stderr (fds 1 and 2, so C libraries too) go to that
run's worker.out; between jobs to the slot log. The event channel is a private copy of the original
fd 1 that training code never writes to.

The process retires itself (reports `retire` and exits after the job's event) when it has run
`--max-jobs` jobs or its resident memory, not counting the feature cache, has grown by more than
`--max-growth-mb` since it became ready. EOF on stdin (the daemon stopped or died) ends it, and
it asks the kernel to kill it if the daemon dies mid-job, so no warm worker outlives its daemon.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from orze.layout import RUN_OUTPUT, Layout
from orze.vocab import WorkerMode

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the daemon's EOF on stdin still ends an idle worker


def should_retire(jobs: int, max_jobs: int, growth_mb: float, max_growth_mb: float) -> str | None:
    """Why this process should be replaced after its latest job, or None (pure)."""
    if max_jobs and jobs >= max_jobs:
        return f"ran {jobs} jobs (max_jobs_per_process {max_jobs})"
    if max_growth_mb and growth_mb > max_growth_mb:
        return f"memory grew {growth_mb:.0f} MiB (max_memory_growth_mb {max_growth_mb:g})"
    return None


class Redirect:
    """Point fds 1 and 2 at a file for the duration of a job."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.saved = (os.dup(1), os.dup(2))
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)


def warm_up(device) -> None:
    """One tiny training step and metric on the device, so the one-off lazy initialisation of the
    runtime (thread pools, autograd, the optimiser's kernels, cuBLAS handles: about 90 MiB of host
    memory on CPU) happens before the worker reports ready, not inside the first experiment."""
    import numpy as np
    import torch
    from sklearn.metrics import average_precision_score

    model = torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.Linear(8, 1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(16, 8, device=device)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(-1), torch.ones(16, device=device))
    loss.backward()
    opt.step()
    average_precision_score(np.array([0, 1]), np.array([0.2, 0.8]))


def host_footprint_mb(cache, device: str) -> float:
    """Resident memory not explained by a CPU-resident feature cache."""
    from orze.worker.memory import current_rss_mb
    return current_rss_mb() - (cache.size_mb if device == "cpu" else 0.0)


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()
    ap = argparse.ArgumentParser(prog="python -m orze.worker.warm")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: $ORZE_DEVICE or auto)")
    ap.add_argument("--cache-mb", type=float, default=8192.0)
    ap.add_argument("--max-jobs", type=int, default=0, help="replace the process after N jobs (0: never)")
    ap.add_argument("--max-growth-mb", type=float, default=4096.0)
    ap.add_argument("--log", type=Path, default=None, help="where output between jobs goes")
    args = ap.parse_args(argv)
    die_with_parent()

    events: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
    log_fd = os.open(args.log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)

    def send(obj: dict[str, Any]) -> None:
        events.write(json.dumps(obj) + "\n")
        events.flush()

    import torch

    import orze.worker.encoders as encoders
    from orze.worker.cache import FeatureCache
    from orze.worker.job import run_job
    from orze.worker.train import resolve_device  # imports the whole training stack (sklearn, …)

    encoders.available()  # import every encoder module now, not during the first job
    device = resolve_device(args.device)
    warm_up(device)  # creates the CUDA context too, before any claim
    cache = FeatureCache(max_mb=args.cache_mb)
    gc.collect()
    baseline = host_footprint_mb(cache, device.type)
    send({"event": "ready", "pid": os.getpid(), "import_s": time.time() - t0, "device": str(device)})

    jobs = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            job = json.loads(line)
            run_dir = Path(job["run_dir"])
        except (ValueError, KeyError, TypeError) as e:
            send({"event": "error", "message": f"bad job line: {e}"})
            continue
        jobs += 1
        with Redirect(run_dir / RUN_OUTPUT):
            code = run_job(run_dir, Layout.at(job.get("root") or run_dir.parents[2]), job.get("device"),
                           claimed_at=job.get("claimed_at"), cache=cache,
                           worker={"mode": str(WorkerMode.WARM), "pid": os.getpid(), "jobs": jobs},
                           notify=lambda epoch: send({"event": "progress", "run_dir": str(run_dir), "epoch": epoch}))
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        growth = host_footprint_mb(cache, device.type) - baseline
        retire = should_retire(jobs, args.max_jobs, growth, args.max_growth_mb)
        send({"event": "done", "run_dir": str(run_dir), "code": code, "jobs": jobs,
              "rss_growth_mb": round(growth, 1), "cache": cache.stats.as_dict(),
              "cache_mb": round(cache.size_mb, 1), "retire": retire})
        if retire:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
