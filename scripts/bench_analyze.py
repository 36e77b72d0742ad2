"""Benchmark: time `orze analyze` on a synthetic leaderboard of N rows (default 100,000).

    /work/main/.venv/bin/python scripts/bench_analyze.py [--rows N] [--keep DIR]

Writes a temporary research directory (configs/space.yaml + runs/leaderboard.jsonl in the ROW_KEYS
schema, from orze.analysis.synthetic), runs `python -m orze analyze --json` on it as a user would
(default options: 200 null permutations, 1,000 random replays, 500 TPE trials) and prints the wall
time of the whole command, plus the in-process time of each part for orientation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from orze.analysis.synthetic import synthetic_rows, write_leaderboard  # noqa: E402
from orze.layout import Layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="Use (and keep) this directory.")
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="orze-bench-"))
    try:
        layout = Layout.at(root)
        layout.configs.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "configs" / "space.yaml", layout.space_config)
        t = time.perf_counter()
        write_leaderboard(layout.leaderboard, synthetic_rows(args.rows, seed=args.seed))
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t:.1f} s "
              f"({layout.leaderboard.stat().st_size / 1e6:.1f} MB)")

        env = dict(os.environ, PYTHONPATH=str(REPO))
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "orze", "analyze", "--json", "--root", str(root)],
                           capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if r.returncode != 0:
            sys.exit(f"orze analyze failed:\n{r.stderr}")
        out = json.loads(r.stdout)
        print(f"orze analyze --json on {out['selection']['analysed']:,} runs: {wall:.1f} s wall")
        conv = out["convergence"]
        print(f"  alpha={conv.get('alpha')}, R2={conv.get('r2')}, AIC choice={conv.get('selected')}, "
              f"eta2={out['variance']['one_way'].get('eta2')}")

        # In-process split, for orientation (same defaults as the CLI).
        import pandas as pd  # noqa: F401

        from orze.analysis import baselines, convergence, exploration, noise, variance
        from orze.analysis.frame import done_runs
        from orze.analysis.summary import search_dims
        from orze.space import load_space
        from orze.store.leaderboard import read_rows, rows_to_frame

        space = load_space(layout.space_config)
        parts = {}
        t = time.perf_counter(); frame = rows_to_frame(read_rows(layout.leaderboard)); parts["read + frame"] = time.perf_counter() - t
        done = done_runs(frame)
        y = done["metric"].to_numpy(float)
        t = time.perf_counter(); convergence.convergence(y, permutations=200); parts["convergence (+200-perm null)"] = time.perf_counter() - t
        t = time.perf_counter(); variance.decompose(done); parts["variance"] = time.perf_counter() - t
        comps = exploration.components_from_space(space)
        t = time.perf_counter()
        exploration.sliding_entropy(done, comps)
        exploration.jsd_over_time(done, comps["architecture"])
        exploration.innovation_summary(y)
        parts["entropy + JSD + innovation"] = time.perf_counter() - t
        t = time.perf_counter(); baselines.random_replay(y, 1000); parts["random replay (1000)"] = time.perf_counter() - t
        t = time.perf_counter()
        baselines.tpe_replay(done, search_dims(done, space), 500,
                             log_dims={n for n, d in space.dimensions.items() if d.log})
        parts["TPE replay (500)"] = time.perf_counter() - t
        t = time.perf_counter(); noise.noise_floor(done, list(space.dimensions)); parts["noise floor"] = time.perf_counter() - t
        for k, v in parts.items():
            print(f"  {k:32s} {v:6.1f} s")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
