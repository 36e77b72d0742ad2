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


def _campaign(tmp_path, pruning=None, env=None):
    layout = make_research_dir(tmp_path / "r", backbones=("vjepa2",), project={
        "worker": {"command": [sys.executable, str(WORKER)], "mode": "cold"},
        "scheduler": {"cpu_slots": 1},
        "pruning": {"enabled": True, "warmup_epochs": 1, "min_comparable": 2, **(pruning or {})}})
    good = [{**BASE, "learning_rate": lr, "priority": "high", "idea_name": f"good {lr}"} for lr in (1e-3, 2e-3)]
    bad = [{**BASE, "learning_rate": 1e-5, "idea_name": "bad"},
           {**BASE, "learning_rate": 1e-2, "idea_name": "bad too"},
           {**BASE, "learning_rate": 1.1e-5, "idea_name": "bad but kept", "prune": "never"},
           {**BASE, "learning_rate": 1.2e-5, "scheduler": "step", "idea_name": "bad, nothing comparable"}]
    (tmp_path / "ideas.yaml").write_text(yaml.safe_dump(good + bad))
    run_orze("submit", str(tmp_path / "ideas.yaml"), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root, timeout=240, env=env)
    return layout, {r["idea_name"]: r for r in read_rows(layout.leaderboard)}


def test_hopeless_runs_are_pruned_through_the_daemon(tmp_path):
    layout, rows = _campaign(tmp_path)
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


def test_a_worker_awaiting_verdicts_stops_at_the_judged_epoch(tmp_path):
    # the same campaign, the worker awaiting the daemon's verdicts (judged.json): with epochs of
    # 0.25 s, a daemon looking only once per pass would have the stop land an epoch late or more
    layout, rows = _campaign(tmp_path, env={"PROGRESS_WORKER_AWAIT": "1"})
    assert {n for n, r in rows.items() if r["status"] == "pruned"} == {"bad", "bad too"}
    for name in ("bad", "bad too"):
        assert rows[name]["pruned"]["epoch"] == rows[name]["pruned"]["stopped_after_epoch"] == 2
    assert rows["bad but kept"]["epochs_run"] == 15 and rows["good 0.001"]["epochs_run"] == 15
    run_dir = layout.run_dir(rows["good 0.001"]["id"])
    assert json.loads((run_dir / "judged.json").read_text())["epoch"] >= 14
    never = layout.run_dir(rows["bad but kept"]["id"])
    assert not (never / "judged.json").exists()   # never judged: its worker never waits


def test_the_built_in_warm_worker_stops_at_the_judged_epoch(tmp_path):
    # the built-in worker in a warm process: its event pipe wakes the daemon after each epoch and
    # it awaits the verdict, so the stop lands at the judged epoch, and the process takes the
    # next job. Two runs recorded elsewhere with a perfect curve make any real run hopeless.
    from orze.store.leaderboard import append_row
    layout = make_research_dir(tmp_path / "w", backbones=("vjepa2",), project={
        "worker": {"mode": "warm"}, "scheduler": {"cpu_slots": 1},
        "pruning": {"enabled": True, "warmup_epochs": 1, "min_comparable": 2}})
    base = {"epochs": 5, "d_model": 16, "num_heads": 2, "seq_len": 8, "scheduler": "cosine"}
    for i in range(2):
        append_row(layout, {"id": f"elsewhere{i}", "status": "done", "config": dict(base), "curve": [1.0] * 5})
    ideas = [{**base, "learning_rate": 1e-5, "idea_name": "hopeless"},
             {**base, "learning_rate": 1e-5, "seed": 7, "prune": "never", "idea_name": "kept"}]
    (tmp_path / "ideas.yaml").write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(tmp_path / "ideas.yaml"), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root, timeout=300)
    rows = {r.get("idea_name"): r for r in read_rows(layout.leaderboard) if r.get("idea_name")}
    hopeless, kept = rows["hopeless"], rows["kept"]
    assert hopeless["status"] == "pruned", hopeless.get("error")
    assert hopeless["pruned"]["epoch"] == hopeless["pruned"]["stopped_after_epoch"] == hopeless["epochs_run"] == 2
    assert kept["status"] == "done" and kept["epochs_run"] == 5
    metrics = [json.loads((layout.run_dir(r["id"]) / "metrics.json").read_text()) for r in (hopeless, kept)]
    assert [m["timings"]["worker_mode"] for m in metrics] == ["warm", "warm"]
    assert metrics[0]["timings"]["worker_pid"] == metrics[1]["timings"]["worker_pid"]   # stayed warm
    assert metrics[1]["timings"]["verdict_wait_s"] == 0      # `prune: never`: never judged, never waits
