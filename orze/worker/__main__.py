"""`python -m orze.worker RUN_DIR [--root ROOT] [--device DEV]`: run one experiment.

Exit status 0 on success (metrics.json written); otherwise failure.json names the failure class
(invalid_config, missing_features, nan_loss, oom, shape_mismatch, crash) and the message, and the
exit status is 3.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from orze.layout import Layout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m orze.worker")
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--root", default=None, help="research directory (default: $ORZE_ROOT or RUN_DIR/../../..)")
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    run_dir = args.run_dir.resolve()
    import os
    root = args.root or os.environ.get("ORZE_ROOT") or run_dir.parents[2]
    layout = Layout.at(root)
    from orze.store.atomic import atomic_write_json
    from orze.worker.train import classify_exception, run_experiment
    try:
        run_experiment(run_dir, layout, args.device)
    except Exception as exc:  # every failure is recorded with its class, never silently lost
        failure = {"class": classify_exception(exc), "message": str(exc)[:2000],
                   "traceback": traceback.format_exc()[-4000:]}
        atomic_write_json(run_dir / "failure.json", failure)
        print(f"orze worker: {failure['class']}: {failure['message']}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
