"""Agents and auto-sweeps through the real daemon (`orze run`), with a trivial custom worker."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from orze.space import fingerprint
from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, run_orze

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("trivial_worker.py")


def research_dir(tmp_path, **project):
    # a custom worker that reads no feature store: admission's store check is off (issue 19)
    base = {"worker": {"command": [sys.executable, str(WORKER)]},
            "scheduler": {"shutdown_grace_s": 0.5, "poll_s": 0.1},
            "admission": {"require_feature_store": False}}
    for k, v in project.items():
        base[k] = {**base.get(k, {}), **v} if isinstance(v, dict) else v
    layout = make_research_dir(tmp_path / "r", project=base, backbones=())
    layout.clips_csv.unlink()  # a task of its own: no clips.csv, so no split check applies
    return layout


def test_sweeps_expand_the_best_runs_through_the_daemon(tmp_path):
    sweeps = {"enabled": True, "top_k": 1, "per_base": 2, "max_total": 3, "interval_s": 0,
              "rules": [{"dim": "learning_rate", "factors": [0.5, 2.0]}, {"dim": "dropout", "deltas": [0.1]}]}
    layout = research_dir(tmp_path, sweeps=sweeps)
    ideas = [{"learning_rate": 1e-3, "idea_name": "a"}, {"learning_rate": 1e-2, "idea_name": "b"}]
    (tmp_path / "i.yaml").write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(tmp_path / "i.yaml"), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)

    rows = read_rows(layout.leaderboard)
    by_id = {r["id"]: r for r in rows}
    swept = [r for r in rows if r.get("source") == "sweep"]
    assert len(swept) == 3, [(r.get("source"), r["config"]["learning_rate"]) for r in rows]
    assert all(r["status"] == "done" and r["agent"] == "sweeps" for r in swept)
    per_parent = {}
    for r in swept:
        per_parent[r["parent"]] = per_parent.get(r["parent"], 0) + 1
    # a run that is top-1 when it finishes becomes a base (which one first depends on the order
    # the two ideas finish): the first base gets per_base variants, the cap leaves one for the next
    assert sorted(per_parent.values(), reverse=True) in ([2, 1], [2]) and max(per_parent.values()) <= 2
    for r in swept:
        parent = by_id[r["parent"]]                              # the base ran before its variants
        changed = {k for k in r["config"] if r["config"][k] != parent["config"].get(k)}
        assert len(changed) == 1 and changed <= {"learning_rate", "dropout"}
    assert len({fingerprint(r["config"]) for r in rows}) == len(rows)   # no duplicate ran
    status = json.loads(run_orze("status", "--json", root=layout.root).stdout)
    assert status["sweeps"]["ideas"] == 3 and status["sweeps"]["runs"] == 3 and status["sweeps"]["max_total"] == 3
    assert "sweeps" in run_orze("status", root=layout.root).stdout


def test_until_idle_waits_for_hosted_agents_to_finish(tmp_path):
    agents = [{"name": "rnd", "policy": "random", "ideas_per_cycle": 2, "queue_limit": 4,
               "interval_s": 0.1, "max_ideas": 5, "seed": 1}]
    layout = research_dir(tmp_path, agents=agents)
    out = run_orze("run", "--until-idle", "--quiet", root=layout.root, timeout=240).stdout
    rows = read_rows(layout.leaderboard)
    assert len(rows) == 5 and all(r["agent"] == "rnd" for r in rows), out
    state = json.loads((layout.agent_dir("rnd") / "state.json").read_text())
    assert state["status"] == "finished"                         # max_ideas reached, then exit
