"""Pruning through the real daemon (`orze run --until-idle`) with a custom worker that follows the
documented file protocol: hopeless runs are asked to stop, stop at an epoch boundary and are
recorded `pruned`; a `prune: never` idea and the good runs run their full schedule."""

import json
import sys
from pathlib import Path

import pytest
import yaml

from orze.store.events import read_events
from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, run_orze

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("progress_worker.py")
BASE = {"epochs": 15, "d_model": 16, "num_heads": 2, "seq_len": 8}


def test_hopeless_runs_are_pruned_through_the_daemon(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=("vjepa2",), project={
        "worker": {"command": [sys.executable, str(WORKER)], "mode": "cold"},
        "scheduler": {"cpu_slots": 1},
        "pruning": {"enabled": True, "warmup_epochs": 1, "min_comparable": 2}})
    good = [{**BASE, "learning_rate": lr, "priority": "high", "idea_name": f"good {lr}"} for lr in (1e-3, 2e-3)]
    bad = [{**BASE, "learning_rate": 1e-5, "idea_name": "bad"},
           {**BASE, "learning_rate": 1e-2, "idea_name": "bad too"},
           {**BASE, "learning_rate": 1.1e-5, "idea_name": "bad but kept", "prune": "never"},
           {**BASE, "learning_rate": 1.2e-5, "scheduler": "step", "idea_name": "bad, nothing comparable"}]
    (tmp_path / "ideas.yaml").write_text(yaml.safe_dump(good + bad))
    run_orze("submit", str(tmp_path / "ideas.yaml"), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root, timeout=240)

    rows = {r["idea_name"]: r for r in read_rows(layout.leaderboard)}
    assert {n: r["status"] for n, r in rows.items()} == {
        "good 0.001": "done", "good 0.002": "done", "bad": "pruned", "bad too": "pruned",
        "bad but kept": "done", "bad, nothing comparable": "done"}, {n: r["error"] for n, r in rows.items()}
    for name in ("bad", "bad too"):
        r = rows[name]
        p = r["pruned"]
        assert p["epoch"] == 2 and 2 <= p["stopped_after_epoch"] == r["epochs_run"] < 15
        assert p["saved_s"] == pytest.approx((15 - r["epochs_run"]) * 0.25)
        assert r["verification"]["level"] == "self-reported" and len(r["curve"]) == r["epochs_run"]
    assert rows["bad but kept"]["epochs_run"] == 15 and rows["bad but kept"]["pruned"] is None
    requested = [e for e in read_events(layout) if e["event"] == "prune_requested"]
    assert sorted(e["epoch"] for e in requested) == [2, 2]
    status = json.loads(run_orze("status", "--json", root=layout.root).stdout)
    assert status["pruned"] == 2
    assert status["pruning"]["saved_s"] == pytest.approx(sum(rows[n]["pruned"]["saved_s"] for n in ("bad", "bad too")))
