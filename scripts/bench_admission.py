"""Admission and scheduling throughput with a large queue (issue 5/7 figures).

Pre-fills runs/queue and runs/fingerprints with N admitted ideas (default 100,000, sampled by the
random policy), then times, through the real Admitter and queue code:
  - admitting M new ideas (in files of 50) with near-duplicate checking on: the first batch (which
    builds the near-duplicate index from runs/fingerprints) and a second batch (steady state);
  - taking the next idea from the queue (a directory listing in scheduling order + one rename).
Prints ideas per second. Usage: python scripts/bench_admission.py [--queued N] [--new M] [--dir D]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queued", type=int, default=100_000)
    ap.add_argument("--new", type=int, default=1_000)
    ap.add_argument("--dir", type=Path, default=None, help="research dir to use (default: a temp dir)")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="orze-bench-admission-"))
    init_directory(root)
    layout = Layout.at(root).ensure()
    space = load_space(layout.space_config)
    rng = random.Random(0)
    print(f"pre-filling {args.queued:,} queued ideas in {root}")
    prefill(layout, space, args.queued, rng)
    admitter = Admitter(layout, space, AdmissionConfig(near_duplicates="flag"), "bench")
    first_s, first_n = admit_batch(layout, admitter, space, args.new, rng)
    second_s, second_n = admit_batch(layout, admitter, space, args.new, rng)
    t0 = time.perf_counter()
    names = queue.list_names(layout)
    taken = queue.take(layout, names[0])
    take_s = time.perf_counter() - t0
    print(f"queue depth: {len(names):,}")
    print(f"admission, first batch (builds the near-duplicate index from {args.queued:,} fingerprints): "
          f"{first_n} ideas in {first_s:.2f}s = {first_n / first_s:,.0f} ideas/s")
    print(f"admission, steady state: {second_n} ideas in {second_s:.2f}s = {second_n / second_s:,.0f} ideas/s")
    print(f"scheduling: list the queue in priority order and take the head: {take_s * 1000:.0f} ms "
          f"({'ok' if taken else 'FAILED'})")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
