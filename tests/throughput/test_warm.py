"""Warm per-slot workers through the real daemon: reuse, identical results to cold workers,
crash and recycling replace the worker (never the daemon) and lose nothing, fallback to cold."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from orze.config import load_project
from orze.daemon import warm as warm_mod
from orze.daemon.node import Daemon, RunBounds
from orze.layout import Layout
from orze.space import load_space
from orze.store import queue
from orze.store.events import read_events
from orze.store.leaderboard import read_rows
from orze.worker.warm import should_retire
from tests.conftest import make_research_dir, orze_env, run_orze

pytestmark = pytest.mark.slow
FAST = {"epochs": 2, "d_model": 16, "num_heads": 2, "seq_len": 8}


def submit(layout, tmp_path, ideas, name="ideas.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(path), root=layout.root)


def by_seed(rows):
    return {r["config"]["seed"]: r for r in rows}


def test_warm_workers_are_reused_and_match_cold_results(tmp_path):
    ideas = [{**FAST, "seed": s, "pooling": p} for s, p in enumerate(["mean", "attention", "max", "last", "mean"])]
    warm = make_research_dir(tmp_path / "warm", project={"worker": {"mode": "warm"}})
    cold = make_research_dir(tmp_path / "cold", project={"worker": {"mode": "cold"}})
    for layout in (warm, cold):
        submit(layout, tmp_path, ideas)
        run_orze("run", "--until-idle", "--quiet", root=layout.root)
    w, c = by_seed(read_rows(warm.leaderboard)), by_seed(read_rows(cold.leaderboard))
    assert len(w) == len(c) == 5
    assert all(r["status"] == "done" for r in [*w.values(), *c.values()])
    assert {r["worker_mode"] for r in w.values()} == {"warm"}
    assert {r["worker_mode"] for r in c.values()} == {"cold"}
    # Same data, same seeds: a warm process that ran other experiments first gives the same result.
    for seed in w:
        assert w[seed]["metric"] == c[seed]["metric"], seed
        assert w[seed]["test_metric"] == c[seed]["test_metric"], seed
    # 5 experiments on 2 slots: each slot's process ran several, and later ones hit the feature cache.
    timings = [r["timings"] for r in w.values()]
    pids = {t["worker_pid"] for t in timings}
    assert len(pids) == 2, pids
    assert max(t["worker_jobs"] for t in timings) >= 2
    assert any(t["feature_cache"] == "hit" for t in timings)
    assert len({r["timings"]["worker_pid"] for r in c.values()}) == 5     # cold: a process each
    for r in w.values():
        t = r["timings"]
        assert t["claim_to_first_step_s"] > 0 and t["train_s"] > 0 and t["overhead_s"] >= 0
        assert t["queue_wait_s"] >= 0 and r["device"] == "cpu"
    # The node's heartbeat carries per-slot accounting; `orze status` shows it.
    status = json.loads(run_orze("status", "--json", root=warm.root).stdout)
    (node,) = status["nodes"]
    assert node["mode"] == "warm" and len(node["slots"]) == 2
    assert node["waiting_idle_fraction"] < 0.05   # event-driven: a freed slot is refilled at once
    assert sum(s["jobs"] for s in node["slots"]) == 5
    assert all(0 < s["utilisation"] <= 1 and s["busy_s"] > 0 for s in node["slots"])
    human = run_orze("status", root=warm.root).stdout
    assert "utilisation" in human and "claim → first step" in human


def test_killed_warm_worker_loses_nothing_and_is_replaced(tmp_path):
    layout = make_research_dir(tmp_path / "r", clips=1200, frames=20,
                               project={"scheduler": {"cpu_slots": 1, "max_attempts": 2}})
    slow = {"epochs": 15, "patience": 15, "batch_size": 16, "d_model": 16, "num_heads": 2, "seq_len": 20}
    submit(layout, tmp_path, [{**slow, "seed": 1}, {**FAST, "seed": 2}])
    proc = subprocess.Popen([sys.executable, "-m", "orze", "run", "--until-idle", "--quiet",
                             "--root", str(layout.root)], env=orze_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while True:
        started = [e for e in read_events(layout) if e["event"] == "started"]
        if started:
            break
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    first = started[0]
    assert first["mode"] == "warm"
    log = layout.run_dir(first["id"]) / "train.log"
    while "epoch 1/" not in (log.read_text() if log.exists() else ""):   # training has begun
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.kill(first["pid"], signal.SIGKILL)          # the slot's warm worker dies mid-experiment
    assert "done val_ap" not in log.read_text()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    rows = by_seed(read_rows(layout.leaderboard))
    assert sorted(rows) == [1, 2] and all(r["status"] == "done" for r in rows.values())
    killed = rows[1]
    assert killed["attempts"] == 2 and killed["history"][0]["failure"] == "killed"
    assert killed["timings"]["worker_pid"] != first["pid"]                 # a fresh worker ran it
    assert queue.depth(layout) == 0 and not list(layout.exp.glob("*/claim"))


def test_recycled_after_max_jobs(tmp_path):
    layout = make_research_dir(tmp_path / "r", project={
        "scheduler": {"cpu_slots": 1}, "worker": {"max_jobs_per_process": 2}})
    submit(layout, tmp_path, [{**FAST, "epochs": 1, "seed": s} for s in range(5)])
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    rows = sorted(read_rows(layout.leaderboard), key=lambda r: r["started_at"])
    assert [r["status"] for r in rows] == ["done"] * 5
    assert [r["timings"]["worker_jobs"] for r in rows] == [1, 2, 1, 2, 1]
    pids = [r["timings"]["worker_pid"] for r in rows]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_should_retire_bounds():
    assert should_retire(3, 0, 10.0, 4096.0) is None
    assert "max_jobs_per_process 3" in should_retire(3, 3, 10.0, 4096.0)
    assert "max_memory_growth_mb 100" in should_retire(1, 0, 150.0, 100.0)
    assert should_retire(1, 0, 1e9, 0.0) is None      # 0: no bound


def test_slot_falls_back_to_cold_when_warm_workers_cannot_start(tmp_path, monkeypatch, caplog):
    layout = make_research_dir(tmp_path / "r", project={"scheduler": {"cpu_slots": 1}})
    submit(layout, tmp_path, [{**FAST, "epochs": 1, "seed": s} for s in range(2)])
    monkeypatch.setattr(warm_mod, "warm_command",
                        lambda cfg, log: [sys.executable, "-c", "import sys; sys.exit(7)"])
    messages = []
    for k, v in orze_env().items():   # the cold workers this daemon starts import orze
        monkeypatch.setenv(k, v)
    daemon = Daemon(Layout.at(layout.root), load_project(layout), load_space(layout.space_config),
                    node="n1", bounds=RunBounds(until_idle=True), on_event=messages.append)
    daemon.run()
    rows = read_rows(layout.leaderboard)
    assert [r["status"] for r in rows] == ["done", "done"]
    assert {r["worker_mode"] for r in rows} == {"cold"}
    assert all(r["attempts"] == 1 for r in rows)   # jobs handed to workers that never got ready used no attempt
    # a degradation is logged (orze run shows it at the user's --log-level), not an event
    assert any("runs cold from now on" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert [e["event"] for e in messages][:1] == ["node_started"] and messages[-1]["event"] == "node_stopped"


def test_replaced_when_memory_grows_beyond_the_bound(tmp_path):
    # After warm-up a worker's footprint grows ~10 MiB over its first experiment (allocator pools,
    # kernels first used) and is then flat; a 0.5 MiB bound therefore retires it after every job.
    layout = make_research_dir(tmp_path / "r", project={
        "scheduler": {"cpu_slots": 1}, "worker": {"max_memory_growth_mb": 0.5}})
    submit(layout, tmp_path, [{**FAST, "epochs": 1, "seed": s} for s in range(3)])
    log = run_orze("run", "--until-idle", "--log-level", "info", root=layout.root).stderr  # off a TTY: one line each
    rows = read_rows(layout.leaderboard)
    assert [r["status"] for r in rows] == ["done"] * 3
    assert [r["timings"]["worker_jobs"] for r in rows] == [1, 1, 1]
    assert len({r["timings"]["worker_pid"] for r in rows}) == 3
    assert "retired (memory grew" in log and "max_memory_growth_mb 0.5" in log
