"""Whole campaigns through the real daemon process (`orze run`), with the real worker or a
custom worker command, including bounds, failures and clean shutdown with nothing lost."""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import yaml

from orze.store import queue
from orze.store.events import read_events
from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, orze_env, run_orze

pytestmark = pytest.mark.slow
FAST = {"epochs": 1, "d_model": 16, "num_heads": 2, "seq_len": 8}


def write_ideas(path, ideas):
    path.write_text(yaml.safe_dump(ideas))
    return path


def test_campaign_until_idle(tmp_path):
    layout = make_research_dir(tmp_path / "r")
    ideas = [{**FAST, "pooling": p, "idea_name": f"pool {p}"} for p in ("attention", "mean", "last", "max")]
    ideas += [{**FAST, "backbone": "dinov2_b", "priority": "high"}]
    ideas += [{**FAST, "pooling": "mean", "idea_name": "dup"}, {**FAST, "pooling": "avg"}]
    out = run_orze("submit", str(write_ideas(tmp_path / "ideas.yaml", ideas)), root=layout.root, check=False)
    assert "5 admitted, 1 rejected, 1 duplicate(s) refused" in out.stdout, out.stdout
    run_orze("run", "--until-idle", "--quiet", root=layout.root)

    rows = read_rows(layout.leaderboard)
    assert len(rows) == 5 and len({r["id"] for r in rows}) == 5
    assert all(r["status"] == "done" for r in rows), [r.get("error") for r in rows]
    assert {r["config"]["pooling"] for r in rows} == {"attention", "mean", "last", "max"}
    assert queue.depth(layout) == 0
    events = read_events(layout)
    assert sum(e["event"] == "started" for e in events) == 5
    assert sum(e["event"] == "finished" for e in events) == 5

    board = json.loads(run_orze("leaderboard", "--json", root=layout.root).stdout)
    metrics = [r["metric"] for r in board]
    assert metrics == sorted(metrics, reverse=True) and board[0]["rank"] == 1
    csv_out = run_orze("leaderboard", "--csv", "--where", "pooling=mean", root=layout.root).stdout
    assert csv_out.splitlines()[0].startswith("rank,id,status,metric,test_metric,backbone")
    assert len(csv_out.strip().splitlines()) == 2
    status = json.loads(run_orze("status", "--json", root=layout.root).stdout)
    assert status["done"] == 5 and status["queue"] == 0 and status["rejected"] == 2
    assert status["best"]["id"] == board[0]["id"]
    human = run_orze("leaderboard", root=layout.root).stdout
    assert board[0]["id"] in human


def test_bounds_max_experiments_and_once(tmp_path):
    layout = make_research_dir(tmp_path / "r")
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{**FAST, "seed": s} for s in range(5)])),
             root=layout.root)
    run_orze("run", "--max-experiments", "1", "--quiet", root=layout.root)
    assert len(read_rows(layout.leaderboard)) == 1 and queue.depth(layout) == 4
    run_orze("run", "--once", "--quiet", root=layout.root)  # 2 CPU slots: one pass starts 2
    assert len(read_rows(layout.leaderboard)) == 3 and queue.depth(layout) == 2


def test_failures_are_classified_and_bounded(tmp_path):
    # Admission rejects an idea whose backbone has no store (tests/daemon/test_admission.py); with
    # that check off, the worker's own failure for a missing store is what is tested here.
    layout = make_research_dir(tmp_path / "r", project={"scheduler": {"max_attempts": 2},
                                                        "admission": {"require_feature_store": False}})
    # siglip2 has no feature store in this directory: a fast, non-retried failure.
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{**FAST, "backbone": "siglip2"}])), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "failed" and row["error"]["class"] == "missing_features"
    assert "features/siglip2/meta.json" in row["error"]["message"] and row["attempts"] == 1


CUSTOM_WORKER = textwrap.dedent('''
    import json, os, sys, time, yaml
    run = sys.argv[-1]
    config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    mode = os.environ.get("TEST_WORKER_MODE", "{mode}")
    if mode == "sleep":
        time.sleep(60)
    time.sleep(float(os.environ.get("TEST_WORKER_SLEEP", "0")))
    if mode == "crash":
        print("boom", flush=True)
        sys.exit(1)
    effective = dict(config)
    if mode == "liar":
        effective["pooling"] = "mean"
    effective["sequence"] = {{"train": {{"seq_len": config["seq_len"]}}, "eval": {{"val": {{"seq_len": config["seq_len"]}}}}}}
    ap = 0.5 + config["seed"] / 100
    m = {{"metric_name": "val_ap", "metric": ap, "test_metric": 0.1,
         "selection": {{"split": "val", "best_epoch": 1}}, "history": [{{"val_ap": ap}}], "epochs_run": 1}}
    json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
    json.dump(m, open(os.path.join(run, "metrics.json"), "w"))
''')


def custom_dir(tmp_path, mode, **sched):
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "worker.py"
    script.write_text(CUSTOM_WORKER.format(mode=mode))
    # A task of its own: the worker reads no feature store, so admission does not require one.
    project = {"worker": {"command": [sys.executable, str(script)]},
               "scheduler": {"shutdown_grace_s": 0.5, "max_attempts": 2, **sched},
               "admission": {"require_feature_store": False}}
    layout = make_research_dir(tmp_path / "r", project=project, backbones=())
    layout.clips_csv.unlink()  # a task of its own: no clips.csv, so no split check applies
    return layout


def test_custom_worker_is_verified_the_same_way(tmp_path):
    layout = custom_dir(tmp_path, "honest")
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": 1}, {"seed": 2}])), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    assert {r["status"] for r in read_rows(layout.leaderboard)} == {"done"}

    liar = custom_dir(tmp_path / "b", "liar")
    run_orze("submit", str(write_ideas(tmp_path / "j.yaml", [{"pooling": "attention"}])), root=liar.root)
    run_orze("run", "--until-idle", "--quiet", root=liar.root)
    (row,) = read_rows(liar.leaderboard)
    assert row["status"] == "misconfigured"
    assert "pooling: requested 'attention', ran 'mean'" in row["error"]["findings"]
    listing = run_orze("leaderboard", "--all", root=liar.root).stdout
    assert "misconfigured" in listing and row["id"] in listing
    (shown,) = json.loads(run_orze("leaderboard", "--all", "--json", root=liar.root).stdout)
    assert "pooling: requested 'attention', ran 'mean'" in shown["error"]["findings"]
    assert run_orze("leaderboard", "--json", root=liar.root).stdout.strip() == "[]"
    status = json.loads(run_orze("status", "--json", root=liar.root).stdout)
    assert status["misconfigured"] == 1
    assert "ran 'mean'" in json.dumps(status["misconfigured_runs"])


def test_crash_is_retried_then_failed_with_log_tail(tmp_path):
    layout = custom_dir(tmp_path, "crash")
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": 3}])), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "failed" and row["error"]["class"] == "crash" and row["attempts"] == 2
    assert "boom" in row["error"]["log_tail"]
    assert [h["failure"] for h in row["history"]] == ["crash"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_releases_running_work_nothing_lost(tmp_path, sig):
    layout = custom_dir(tmp_path, "sleep")
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": s} for s in range(3)])), root=layout.root)
    proc = subprocess.Popen([sys.executable, "-m", "orze", "run", "--quiet", "--root", str(layout.root)],
                            env=orze_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while sum(e["event"] == "started" for e in read_events(layout)) < 2:
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    workers = [json.loads((layout.run_dir(e["id"]) / "claim").read_text()) for e in read_events(layout)
               if e["event"] == "started"]
    assert len(workers) == 2
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert queue.depth(layout) == 3  # two released + one never started
    assert read_rows(layout.leaderboard) == []
    assert not list(layout.exp.glob("*/claim"))
    assert sum(e["event"] == "released" for e in read_events(layout)) == 2
    # The released ideas run to completion later, exactly once each.
    (tmp_path / "worker.py").write_text(CUSTOM_WORKER.format(mode="honest"))
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    rows = read_rows(layout.leaderboard)
    assert sorted(r["config"]["seed"] for r in rows) == [0, 1, 2]
    assert all(r["status"] == "done" for r in rows)


def test_restart_recovers_own_claims(tmp_path):
    layout = custom_dir(tmp_path, "sleep")
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": 9}])), root=layout.root)
    proc = subprocess.Popen([sys.executable, "-m", "orze", "run", "--quiet", "--node", "n1",
                             "--root", str(layout.root)], env=orze_env(), start_new_session=True)
    deadline = time.time() + 60
    while not any(e["event"] == "started" for e in read_events(layout)):
        assert time.time() < deadline
        time.sleep(0.2)
    import os
    os.killpg(proc.pid, signal.SIGKILL)  # the daemon dies without cleanup; its worker lives on
    proc.wait()
    assert queue.depth(layout) == 0 and list(layout.exp.glob("*/claim"))
    (run_dir,) = [p.parent for p in layout.exp.glob("*/claim")]
    worker_pid = int((run_dir / "worker.pid").read_text())
    assert _running(worker_pid)  # the orphaned worker is still running
    (tmp_path / "worker.py").write_text(CUSTOM_WORKER.format(mode="honest"))
    run_orze("run", "--until-idle", "--quiet", "--node", "n1", root=layout.root)
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "done" and row["config"]["seed"] == 9
    time.sleep(0.2)
    assert not _running(worker_pid), "the restarted daemon must kill the orphaned worker"


def _running(pid: int) -> bool:
    """Alive and not a zombie (an unreaped child of a dead parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_leaderboard_shows_replicate_mean_and_std(tmp_path):
    layout = custom_dir(tmp_path, "honest")
    ideas = [{"seed": s, "pooling": "mean"} for s in (1, 2, 3)] + [{"seed": 4}]
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", ideas)), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    board = json.loads(run_orze("leaderboard", "--json", root=layout.root).stdout)
    reps = {r["config"]["seed"]: r.get("replicates") for r in board}
    assert reps[4] is None
    # The custom worker's metric is 0.5 + seed/100: seeds 1..3 → mean 0.52, std 0.01.
    assert reps[1]["n"] == 3 and abs(reps[1]["mean"] - 0.52) < 1e-9 and abs(reps[1]["std"] - 0.01) < 1e-9
    assert "mean ± std (n)" in run_orze("leaderboard", root=layout.root).stdout


@pytest.mark.parametrize("knob, cls", [("timeout_min", "timeout"), ("stall_min", "stalled")])
def test_timeout_and_stall_kill_the_worker(tmp_path, knob, cls):
    layout = custom_dir(tmp_path, "sleep", max_attempts=1, **{knob: 0.03})
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": 5}])), root=layout.root)
    t0 = time.time()
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    assert time.time() - t0 < 40  # the 60 s sleeper was killed, not waited for
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "failed" and row["error"]["class"] == cls
    pid = int((layout.run_dir(row["id"]) / "worker.pid").read_text())
    assert not _running(pid)


def test_oom_is_healed_by_halving_the_batch(tmp_path):
    layout = custom_dir(tmp_path, "honest", max_attempts=2)
    script = tmp_path / "worker.py"
    script.write_text(script.read_text().replace(
        'effective = dict(config)',
        'if config["batch_size"] > 32:\n'
        '    print("CUDA out of memory", flush=True)\n'
        '    json.dump({"class": "oom", "message": "CUDA out of memory"}, open(os.path.join(run, "failure.json"), "w"))\n'
        '    sys.exit(1)\n'
        'effective = dict(config)'))
    run_orze("submit", str(write_ideas(tmp_path / "i.yaml", [{"seed": 6, "batch_size": 64}])), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "done" and row["config"]["batch_size"] == 32 and row["attempts"] == 2
    assert row["history"][0]["failure"] == "oom" and "64 → 32" in row["history"][0]["heal"]
