"""`python -m orze.worker RUN_DIR [--root ROOT] [--device DEV]`: run one experiment (cold mode).

Exit status 0 on success (metrics.json written); otherwise failure.json names the failure class
(invalid_config, missing_features, nan_loss, oom, shape_mismatch, crash) and the message, and the
exit status is 3. The warm per-slot worker (`python -m orze.worker.warm`) runs the same job code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from orze.layout import Layout
from orze.vocab import WorkerMode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orze.worker")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--root", default=None, help="research directory (default: $ORZE_ROOT or RUN_DIR/../../..)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    root = args.root or os.environ.get("ORZE_ROOT") or run_dir.parents[2]
    from orze.worker.job import run_job
    return run_job(run_dir, Layout.at(root), args.device,
                   worker={"mode": str(WorkerMode.COLD), "pid": os.getpid(), "jobs": 1})


if __name__ == "__main__":
    sys.exit(main())
