"""A single-backbone campaign with the shipped rules, run to its budget through the daemon.

    python scripts/campaign_single_backbone.py [--ideas 40] [--max-minutes 15] [--keep DIR]

The space is narrowed to one backbone (vjepa2) — a group that has features for one backbone only —
and prompts/rules.md is the shipped one (`min_other_backbone: 1`, which such a campaign can never
meet). Three agents propose: the shipped `random` policy, `tpe`, and an `openai` agent against a
local Chat Completions server (127.0.0.1) replying with fresh single-backbone batches. Each has
`max_ideas: --ideas`. `orze run --until-idle` runs until every agent has reached its budget (the
documented meaning of --until-idle with hosted agents); the worker is a trivial custom command.

Printed: wall time, per agent the cycles, ideas submitted against the budget, cycles that submitted
nothing and the longest run of them, the notice that waived the impossible rule; exits non-zero if
an agent stalled (did not reach its budget within --max-minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from orze.agents import ledger  # noqa: E402
from orze.agents.policies.random_policy import sample_config  # noqa: E402
from orze.cli.init import init_directory  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.space import load_space  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402
from tests.agents.servers import ScriptedServer  # noqa: E402

BACKBONE = "vjepa2"


def replies(space, n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ideas = []
        for _ in range(3):
            c = sample_config(space, rng)
            ideas.append({k: c[k] for k in ("backbone", "temporal_encoder", "pooling", "loss", "learning_rate",
                                            "dropout") if k in c})
        out.append(("text", "```yaml\n" + yaml.safe_dump(ideas, sort_keys=False) + "```"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ideas", type=int, default=40, help="max_ideas of each agent")
    ap.add_argument("--max-minutes", type=float, default=15.0)
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="orze-single-"))
    init_directory(root)
    layout = Layout.at(root)
    space_doc = yaml.safe_load(layout.space_config.read_text())
    space_doc["dimensions"]["backbone"].update(choices=[BACKBONE], default=BACKBONE)
    layout.space_config.write_text(yaml.safe_dump(space_doc, sort_keys=False))
    space = load_space(layout.space_config)
    shipped = (REPO / "prompts" / "rules.md").read_text()
    assert layout.rules_prompt.read_text() == shipped and "min_other_backbone: 1" in shipped

    server = ScriptedServer("openai", replies(space, 400, 1)).__enter__()
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["scheduler"].update({"cpu_slots": 2, "poll_s": 0.5})
    proj["worker"] = {"command": [sys.executable, str(REPO / "tests" / "agents" / "trivial_worker.py")]}
    proj["sweeps"] = {"enabled": False}
    common = {"ideas_per_cycle": 4, "queue_limit": 6, "interval_s": 0.5, "max_ideas": args.ideas}
    proj["agents"] = [
        {"name": "explorer", "policy": "random", "seed": 0, **common},
        {"name": "tuner", "policy": "tpe", "seed": 1, **common},
        {"name": "local", "policy": "openai", "model": "qwen2.5-7b-instruct", **common,
         "options": {"base_url": server.url + "/v1", "api_key_env": None, "timeout_s": 5}},
    ]
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORZE_THREADS": "1"}
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, "-m", "orze", "run", "--root", str(root), "--until-idle",
                               "--quiet"], env=env, capture_output=True, text=True,
                              timeout=args.max_minutes * 60)
        finished = proc.returncode == 0
    except subprocess.TimeoutExpired:
        finished = False
    wall = time.time() - t0
    server.__exit__(None, None, None)
    rows = read_rows(layout.leaderboard)
    print(f"single-backbone campaign ({BACKBONE} only, shipped prompts/rules.md): {root}")
    print(f"orze run --until-idle {'exited' if finished else 'DID NOT EXIT'} after {wall:.0f}s; "
          f"{len(rows)} runs on the leaderboard, backbones {sorted({str(r['config']['backbone']) for r in rows})}")
    ok = finished
    print("\nagent | policy | cycles | submitted / budget | cycles with nothing submitted | longest run of those | state")
    for a in proj["agents"]:
        name = a["name"]
        recs = [json.loads(line) for line in ledger.ledger_path(layout, name).open()]
        cycles = [r for r in recs if r.get("kind") == "cycle"]
        empty = [r for r in cycles if r.get("submitted", 0) == 0]
        longest = run = 0
        for r in cycles:
            run = run + 1 if r.get("submitted", 0) == 0 else 0
            longest = max(longest, run)
        t = ledger.totals(layout, name)
        state = json.loads((layout.agent_dir(name) / "state.json").read_text()).get("status")
        ok &= t.submitted >= args.ideas and state == "finished"
        print(f"{name} | {a['policy']} | {len(cycles)} | {t.submitted} / {args.ideas} | {len(empty)} | {longest} | {state}")
        for r in recs:
            if r.get("kind") == "notice":
                print(f"    notice (once): {r['detail']}")
    print(f"\nresult: {'PASS: every agent ran to its budget' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
