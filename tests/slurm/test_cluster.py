"""`orze slurm` against a real Slurm (munged + slurmctld + slurmd on localhost, fake GPUs): a
campaign submitted and finished, preempted and resumed, stopped; every figure checked from the
probe worker's own log as well as from Orze's leaderboard."""

from __future__ import annotations

import json
import subprocess

import pytest

from orze.slurm.probe import audit, default_log, read_log
from orze.store import queue
from orze.store.events import read_events
from orze.store.leaderboard import read_rows
from tests.slurm.conftest import orze, probe_dir, squeue_states, submit_ideas, wait_for

pytestmark = pytest.mark.slow


def _job_id(out: str) -> str:
    # "submitted job 12 (array, 2 node(s)): 12_0, 12_1; ..."
    return out.split("submitted job ", 1)[1].split()[0]


def _ended(cluster, job):
    states = squeue_states(cluster, job)
    return states and all(s in ("COMPLETED", "CANCELLED", "FAILED") for s in states.values()) and states


def _probe(layout, seeds):
    return audit(read_log(default_log(layout.root)), seeds)


def test_submit_runs_campaign_to_the_end(clean_queue, tmp_path):
    cluster = clean_queue
    layout = probe_dir(tmp_path / "r", sleep_s=0.5)
    seeds = list(range(8))
    submit_ideas(cluster, layout, seeds)
    out = orze(cluster, "slurm", "submit", "--nodes", "2", "--gpus-per-node", "1", "--until-idle",
               root=layout.root).stdout
    job = _job_id(out)
    (record,) = layout.slurm_jobs.glob("*.json")
    assert json.loads(record.read_text())["job_id"] == job
    states = wait_for(lambda: _ended(cluster, job), 120, "the pilots to finish", cluster)
    assert states == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}

    a = _probe(layout, seeds)
    assert (a["done"], a["lost"], a["run_twice"], a["overlapping"]) == (8, 0, 0, 0), a
    rows = read_rows(layout.leaderboard)
    assert sorted(r["config"]["seed"] for r in rows) == seeds and {r["status"] for r in rows} == {"done"}
    # Both pilots worked, each under its Slurm name, on the GPU Slurm gave it (not the machine's).
    beats = {p.stem: json.loads(p.read_text()) for p in layout.nodes.glob("*.json")}
    assert set(beats) == {f"{cluster.node}-{job}_0", f"{cluster.node}-{job}_1"}
    assert {b["slurm"]["job"] for b in beats.values()} == {f"{job}_0", f"{job}_1"}
    assert sorted(b["slurm"]["gpus"] for b in beats.values()) == ["0", "1"]
    assert {r["node"] for r in rows} <= set(beats)
    text = orze(cluster, "status", root=layout.root).stdout
    assert f"slurm job {job}_0" in text and f"slurm job {job}_1" in text
    st = json.loads(orze(cluster, "slurm", "status", "--json", root=layout.root).stdout)
    assert st["slurm_error"] is None
    assert {(p["job"], p["state"], p["daemon"], p["verdict"]) for p in st["pilots"]} == {
        (f"{job}_0", "COMPLETED", "stopped", "ended"), (f"{job}_1", "COMPLETED", "stopped", "ended")}


def test_preempted_pilot_resumes_nothing_lost_or_run_twice(clean_queue, tmp_path):
    cluster = clean_queue
    # Experiments (3 s) outlast the daemon's grace (1 s): a warning releases the running one.
    layout = probe_dir(tmp_path / "r", sleep_s=3.0, grace_s=1.0)
    seeds = list(range(12))
    submit_ideas(cluster, layout, seeds)
    job = _job_id(orze(cluster, "slurm", "submit", "--nodes", "2", "--until-idle", root=layout.root).stdout)
    # Preempt the task whose own job id is the array's id (which scontrol would read as the whole
    # array if the script requeued itself by SLURM_JOB_ID); the other pilot must not be touched.
    ids = wait_for(lambda: _unique_ids(cluster, job) if len(_unique_ids(cluster, job)) == 2 else None, 60,
                   "both pilots to run", cluster)
    task = next(t for t, i in ids.items() if i == job)
    other = next(t for t in ids if t != task)
    log = default_log(layout.root)

    def working(restart):
        return lambda: any(r["event"] == "start" and r["job"] == job and (r["restart"] or "0") == str(restart)
                           for r in read_log(log))

    # 1. The warning signal a time limit or a preemption gives (SIGTERM to the batch shell only):
    #    the script forwards it, the daemon releases the running experiment, the job requeues itself.
    wait_for(working(0), 60, "the pilot's first experiment", cluster)
    subprocess.run(["scancel", "--batch", "--signal=TERM", task], env=cluster.env(), check=True, timeout=30)
    wait_for(working(1), 90, "the requeued pilot to work again", cluster)
    # 2. A hard requeue (an administrator's, or preemption with PreemptMode=REQUEUE): Slurm signals
    #    every process of the job, workers included, and requeues it itself.
    subprocess.run(["scontrol", "requeue", task], env=cluster.env(), check=True, timeout=30)
    wait_for(lambda: _ended(cluster, job), 240, "the campaign to finish after two preemptions", cluster)

    assert (cluster_restarts(cluster, task), cluster_restarts(cluster, other)) == (2, 0)
    a = _probe(layout, seeds)
    assert (a["done"], a["lost"], a["run_twice"], a["overlapping"]) == (12, 0, 0, 0), a
    assert a["interrupted_starts"] >= 2, a   # both preemptions caught an experiment mid-way
    rows = read_rows(layout.leaderboard)
    assert sorted(r["config"]["seed"] for r in rows) == seeds and {r["status"] for r in rows} == {"done"}
    assert all(r["attempts"] == 1 for r in rows), [r.get("history") for r in rows]  # a release uses no attempt
    released = [e for e in read_events(layout) if e["event"] == "released"]
    assert len(released) >= 2 and queue.depth(layout) == 0 and not list(layout.exp.glob("*/claim"))
    out = (layout.slurm_logs / f"{task}.out").read_text()
    assert out.count("requeueing job") == 2 and "restart 2" in out


def _unique_ids(cluster, job) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-j", job, "-o", "%i %A"], env=cluster.env(),
                         capture_output=True, text=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def cluster_restarts(cluster, job: str) -> int:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], env=cluster.env(), capture_output=True,
                         text=True, timeout=30).stdout
    for tok in out.split():
        if tok.startswith("Restarts="):
            return int(tok.split("=", 1)[1])
    return -1


def test_stop_ends_jobs_without_requeue_and_releases_work(clean_queue, tmp_path):
    cluster = clean_queue
    layout = probe_dir(tmp_path / "r", sleep_s=30.0, grace_s=1.0)
    seeds = list(range(5))
    submit_ideas(cluster, layout, seeds)
    # --forever: the pilots would wait for new ideas indefinitely; only stop ends them.
    job = _job_id(orze(cluster, "slurm", "submit", "--nodes", "2", "--forever", root=layout.root).stdout)
    log = default_log(layout.root)
    wait_for(lambda: sum(r["event"] == "start" for r in read_log(log)) >= 2, 60, "both pilots working", cluster)
    st = json.loads(orze(cluster, "slurm", "status", "--json", root=layout.root).stdout)
    assert {(p["job"], p["state"], p["daemon"], p["running"], p["verdict"]) for p in st["pilots"]} == {
        (f"{job}_0", "RUNNING", "alive", 1, "ok"), (f"{job}_1", "RUNNING", "alive", 1, "ok")}
    out = orze(cluster, "slurm", "stop", "--wait", "60", root=layout.root).stdout
    assert "2 running pilot(s) signalled" in out and "scancel" not in out.split("signalled", 1)[1], out
    states = wait_for(lambda: _ended(cluster, job), 60, "the pilots to end", cluster)
    assert set(states.values()) == {"COMPLETED"}          # ended by the daemon, not killed
    assert cluster_restarts(cluster, f"{job}_0") == 0     # and not requeued
    assert (layout.slurm_jobs / f"{job}.stop").exists()
    assert queue.depth(layout) == 5 and read_rows(layout.leaderboard) == []
    assert not list(layout.exp.glob("*/claim"))
    beats = [json.loads(p.read_text()) for p in layout.nodes.glob("*.json")]
    assert len(beats) == 2 and all(b["stopped"] for b in beats)
    for task in (f"{job}_0", f"{job}_1"):
        assert "released back to the queue (shutdown)" in (layout.slurm_logs / f"{task}.out").read_text()
    # A stopped pilot that comes back anyway (requeued by someone else) exits without starting orze run.
    subprocess.run(["scontrol", "requeue", f"{job}_0"], env=cluster.env(), check=True, timeout=30)
    wait_for(lambda: cluster_restarts(cluster, f"{job}_0") == 1 and _ended(cluster, job), 90,
             "the requeued stopped pilot to end", cluster)
    text = (layout.slurm_logs / f"{job}_0.out").read_text()
    assert "(orze slurm stop): not starting" in text and text.count("orze run exited") == 1
    assert queue.depth(layout) == 5


def test_srun_topology_one_multinode_job(clean_queue, tmp_path):
    cluster = clean_queue
    layout = probe_dir(tmp_path / "r", sleep_s=0.3)
    seeds = list(range(4))
    submit_ideas(cluster, layout, seeds)
    job = _job_id(orze(cluster, "slurm", "submit", "--topology", "srun", "--gpus-per-node", "2", "--until-idle",
                       root=layout.root).stdout)
    assert wait_for(lambda: _ended(cluster, job), 120, "the srun job to finish", cluster) == {job: "COMPLETED"}
    a = _probe(layout, seeds)
    assert (a["done"], a["lost"], a["run_twice"]) == (4, 0, 0), a
    (beat,) = [json.loads(p.read_text()) for p in layout.nodes.glob("*.json")]
    assert beat["node"] == f"{cluster.node}-{job}" and beat["slurm"]["gpus"] == "0,1"
    assert "srun --nodes=1" in next(layout.slurm.glob("*.sbatch")).read_text()
