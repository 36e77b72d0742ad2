"""The cost of verification on the demo: seconds added per experiment, and their share of it.

Runs the demo campaign as shipped (`orze demo run -n N`: the synthetic features, the random agent
with the demo's subspace, warm workers on CPU) in a fresh research directory, then for every
recorded run adds up
- the worker's verification time (`timings.verify_s`: build-time probes, the recorder's hooks and
  counters during training and evaluation, the determinism probe, the data-path evidence), and
- the daemon's: `gather` (verification) and `judge` on the run's files, timed here (best of 3), which is what the
  daemon runs when it records the run (reading clips.csv, re-hashing feature rows, the checks),
and prints each run, the median added seconds and the median share of the experiment's wall time
(`duration_s`, claim to record).

    python scripts/bench_verification.py --experiments 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", "-n", type=int, default=8)
    ap.add_argument("--root", type=Path, default=None, help="research directory (default: a temp dir)")
    args = ap.parse_args()

    from orze.config import load_project
    from orze.daemon.outcome import judge
    from orze.daemon.record import gather
    from orze.layout import RUN_EFFECTIVE, Layout
    from orze.store.leaderboard import read_rows
    from orze.store.queue import Entry

    root = args.root or Path(tempfile.mkdtemp(prefix="orze-bench-verify-"))
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "orze", "demo", "run", "--root", str(root), "-n",
                    str(args.experiments), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    layout = Layout.at(root)
    project = load_project(layout)   # what the daemon holds; not timed as verification
    rows = [r for r in read_rows(layout.leaderboard) if r.get("status") in ("done", "misconfigured")]
    print(f"demo campaign: {len(rows)} verified runs in {wall:.0f}s wall ({root})")
    print(f"{'run':32s} {'status':13s} {'exp s':>8s} {'worker s':>9s} {'daemon s':>9s} {'added %':>8s} "
          f"{'checks':>7s} {'eff KiB':>8s}")
    added, shares = [], []
    for r in rows:
        run_dir = layout.run_dir(r["id"])
        entry = Entry(r["id"], r["fingerprint"], r["config"], {}, r.get("admitted_at") or time.time())
        judge_s = []
        for _ in range(3):
            t = time.perf_counter()
            judge(gather(layout, project, entry, run_dir, 0, None, 1))
            judge_s.append(time.perf_counter() - t)
        worker_s = float((r.get("timings") or {}).get("verify_s") or 0.0)
        total = worker_s + min(judge_s)
        share = total / r["duration_s"] if r.get("duration_s") else float("nan")
        added.append(total)
        shares.append(share)
        v = r.get("verification") or {}
        size = (run_dir / RUN_EFFECTIVE).stat().st_size / 1024
        print(f"{r['id']:32s} {r['status']:13s} {r['duration_s']:8.2f} {worker_s:9.3f} {min(judge_s):9.3f} "
              f"{100 * share:7.2f}% {v.get('checks_passed', 0):>3}/{v.get('checks_total', 0):<3} {size:8.1f}")
    if not rows:
        print("no verified runs")
        return 1
    print(json.dumps({"runs": len(rows), "median_added_s": round(statistics.median(added), 3),
                      "median_share_pct": round(100 * statistics.median(shares), 2),
                      "max_share_pct": round(100 * max(shares), 2),
                      "median_experiment_s": round(statistics.median(r["duration_s"] for r in rows), 2),
                      "misconfigured": sum(r["status"] == "misconfigured" for r in rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
