"""Admission and scheduling throughput with a large queue, and reading a large leaderboard.

Pre-fills runs/queue and runs/fingerprints with N admitted ideas (default 100,000, sampled by the
random policy), then times, through the real code:
  - admission of M new ideas (in files of 50) with near-duplicate checks on: the first batch
    (which builds the near-duplicate index from runs/fingerprints) and a second (steady state);
  - listing the queue in scheduling order (what a node's queue view does at most every
    max(poll_s, 10 x listing time));
  - the daemon's scheduling cycle with the queue still ~N deep: a real Daemon with K slots and a
    trivial worker (a shell one-liner that writes metrics.json), E experiments claimed, started,
    reaped, verified and recorded; prints cycles per second and the daemon's CPU per cycle;
  - the top 20 of an R-row leaderboard (default 100,000): in-process, and `orze leaderboard`.

Usage: python scripts/bench_scheduler.py [--queued N] [--new M] [--cycles E] [--slots K] [--rows R] [--dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orze.agents.policies.random_policy import sample_config  # noqa: E402
from orze.cli.init import init_directory  # noqa: E402
from orze.config import AdmissionConfig  # noqa: E402
from orze.daemon.admission import Admitter  # noqa: E402
from orze.ids import new_id  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.space import check_idea, fingerprint, load_space  # noqa: E402
from orze.store import queue  # noqa: E402
from orze.store.inbox import submit_ideas  # noqa: E402
from orze.store.leaderboard import ranked, read_rows, row_line  # noqa: E402


def prefill(layout: Layout, space, n: int, rng: random.Random) -> None:
    """Write n admitted ideas directly (what n admissions would have left behind)."""
    t0 = time.time()
    for i in range(n):
        cfg = check_idea(space, {**sample_config(space, rng), "num_heads": 1}).config
        fp = fingerprint(cfg)
        run_id = new_id()
        (layout.fingerprints / fp).write_text(json.dumps({"id": run_id, "source": "prefill", "index": i,
                                                          "config": cfg}))
        e = queue.Entry(id=run_id, fingerprint=fp, config=cfg, meta={"priority": "medium"},
                        admitted_at=time.time())
        (layout.queue / e.filename()).write_text(json.dumps(e.to_json()))
        if (i + 1) % 20000 == 0:
            print(f"  prefilled {i + 1:,} in {time.time() - t0:.0f}s", flush=True)


def admit_batch(layout: Layout, admitter: Admitter, space, m: int, rng: random.Random) -> tuple[float, int]:
    ideas = [{**sample_config(space, rng), "num_heads": 1} for _ in range(m)]
    for k in range(0, m, 50):
        submit_ideas(layout, ideas[k:k + 50], "bench")
    t0 = time.perf_counter()
    report = admitter.admit_pending()
    return time.perf_counter() - t0, len(report.admitted)


# The trivial worker: the run directory is appended as $0; it reports a metric and exits.
TRIVIAL_WORKER = ["/bin/sh", "-c", 'printf \'{"metric_name": "val_ap", "metric": 0.5}\' > "$0/metrics.json"']


def schedule_cycles(layout: Layout, cycles: int, slots: int) -> dict:
    """A real Daemon (in this process) running `cycles` trivial experiments on `slots` slots."""
    from orze.config import ProjectConfig
    from orze.daemon.node import Daemon, RunBounds

    project = ProjectConfig.model_validate({
        "scheduler": {"cpu_slots": slots, "gpus": "none", "poll_s": 1.0, "max_attempts": 1},
        "worker": {"command": TRIVIAL_WORKER}, "admission": {"require_feature_store": False}})
    space = load_space(layout.space_config)
    daemon = Daemon(layout, project, space, node="bench", bounds=RunBounds(max_experiments=cycles))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    counters = daemon.run()
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    snap = daemon.snapshot()
    return {"cycles": counters.started, "wall_s": wall, "cycles_per_s": counters.started / wall,
            "daemon_cpu_ms_per_cycle": 1000 * cpu / max(counters.started, 1),
            "recorded": counters.done + counters.failed + counters.misconfigured,
            "statuses": {k: getattr(counters, k) for k in ("done", "failed", "misconfigured")},
            "queue_listing_s": snap["queue_view"]["list_s"]}


def leaderboard_rows(layout: Layout, space, n: int, rng: random.Random) -> None:
    t0 = time.time()
    with open(layout.leaderboard, "wb") as f:
        for i in range(n):
            cfg = check_idea(space, {**sample_config(space, rng), "num_heads": 1}).config
            f.write(row_line({"id": f"run{i:07d}", "fingerprint": fingerprint(cfg), "status": "done",
                              "metric_name": "val_ap", "metric": rng.random(), "test_metric": rng.random(),
                              "config": cfg, "agent": "bench", "started_at": 1.0 * i, "finished_at": i + 1.0,
                              "duration_s": 1.0, "peak_memory_mb": 100.0, "device": "cpu"}))
    print(f"  wrote {n:,} leaderboard rows ({layout.leaderboard.stat().st_size / 2**20:.0f} MiB) "
          f"in {time.time() - t0:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=1_000)
    ap.add_argument("--cycles", type=int, default=1_000, help="experiments through the scheduling cycle")
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--rows", type=int, default=100_000, help="leaderboard rows for the top-20 read")
    ap.add_argument("--dir", type=Path, default=None, help="research dir to use (default: a temp dir)")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="orze-bench-scheduler-"))
    init_directory(root)
    layout = Layout.at(root).ensure()
    space = load_space(layout.space_config)
    rng = random.Random(0)
    print(f"pre-filling {args.queued:,} queued ideas in {root}")
    prefill(layout, space, args.queued, rng)
    admitter = Admitter(layout, space, AdmissionConfig(near_duplicates="flag", require_feature_store=False), "bench")
    first_s, first_n = admit_batch(layout, admitter, space, args.new, rng)
    second_s, second_n = admit_batch(layout, admitter, space, args.new, rng)
    t0 = time.perf_counter()
    names = queue.list_names(layout)
    list_s = time.perf_counter() - t0
    print(f"queue depth: {len(names):,}")
    print(f"admission, first batch (builds the near-duplicate index from {args.queued:,} fingerprints): "
          f"{first_n} ideas in {first_s:.2f}s = {first_n / first_s:,.0f} ideas/s")
    print(f"admission, steady state: {second_n} ideas in {second_s:.2f}s = {second_n / second_s:,.0f} ideas/s")
    print(f"queue listing in scheduling order ({len(names):,} entries): {list_s * 1000:.0f} ms")
    cyc = schedule_cycles(layout, args.cycles, args.slots)
    print(f"scheduling cycle with {len(names):,} queued, {args.slots} slots, trivial worker: "
          f"{cyc['cycles']} experiments in {cyc['wall_s']:.1f}s = {cyc['cycles_per_s']:.0f} per second "
          f"(claim, start, reap, verify, record); daemon CPU {cyc['daemon_cpu_ms_per_cycle']:.1f} ms per "
          f"experiment; recorded {cyc['recorded']} {cyc['statuses']}")
    print(f"queue depth after: {queue.depth(layout):,}")

    leaderboard_rows(layout, space, args.rows, rng)
    t0 = time.perf_counter()
    top = ranked(read_rows(layout.leaderboard))[:20]
    top_s = time.perf_counter() - t0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "orze", "leaderboard", "--top", "20", "--json", "--root", str(root)],
                         capture_output=True, text=True, env=env, check=True)
    cli_s = time.perf_counter() - t0
    shown = json.loads(out.stdout)
    assert [r["id"] for r in shown] == [r["id"] for r in top], "CLI and in-process top 20 differ"
    print(f"top 20 of a {args.rows:,}-row leaderboard: {top_s:.2f}s in-process; "
          f"`orze leaderboard --top 20` {cli_s:.2f}s including interpreter start")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
