"""Figure: the agent prompt's size with a 100,000-row leaderboard (characters, estimated tokens).

Builds a throwaway research directory with the repository's configs/ and prompts/, writes N
synthetic finished runs (1% failed) to runs/leaderboard.jsonl, reads the history the way an agent
does and renders prompts/research.md at several token budgets.

    python scripts/agents_prompt_size.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from orze.agents.context import estimate_tokens, load_template, read_history, render_prompt
from orze.agents.rules import load_rules
from orze.layout import Layout
from orze.space import check_idea, load_space
from orze.store.leaderboard import row_line

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(REPO / "configs", root / "configs")
        shutil.copytree(REPO / "prompts", root / "prompts")
        layout = Layout.at(root).ensure()
        space = load_space(layout.space_config)
        base = check_idea(space, {}).config
        rng = random.Random(0)
        bb = space.dimensions["backbone"].choices
        enc = space.dimensions["temporal_encoder"].choices
        with open(layout.leaderboard, "wb") as f:
            for i in range(args.rows):
                c = dict(base, backbone=rng.choice(bb), temporal_encoder=rng.choice(enc),
                         learning_rate=float(f"{10 ** rng.uniform(-5, -2):.6g}"))
                failed = i % 100 == 0
                f.write(row_line({"id": f"run-{i:07d}", "status": "failed" if failed else "done",
                                  "metric": None if failed else rng.random(), "test_metric": rng.random(),
                                  "config": c, "finished_at": 1e9 + i,
                                  "error": "RuntimeError: CUDA out of memory" if failed else None}))
        t0 = time.perf_counter()
        history = read_history(layout, space, load_rules(layout.rules_prompt, space))
        t_read = time.perf_counter() - t0
        template = load_template(layout)
        print(f"leaderboard rows: {len(history.rows):,} (read in {t_read:.2f} s)")
        print(f"{'budget (tokens)':>16} {'characters':>11} {'est. tokens':>12} {'render s':>9}  shortened")
        for budget in (6000, 2000, 1600, 1300):
            t0 = time.perf_counter()
            prompt = render_prompt(template, history, agent="claude1", n=4, budget_tokens=budget)
            dt = time.perf_counter() - t0
            short = "yes" if "to fit the token budget" in prompt else "no"
            print(f"{budget:>16} {len(prompt):>11,} {estimate_tokens(prompt):>12,} {dt:>9.2f}  {short}")


if __name__ == "__main__":
    main()
