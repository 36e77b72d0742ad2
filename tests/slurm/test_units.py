"""The pure parts of orze/slurm: settings, the script, the environment, parsing, the status join,
the probe's audit. No Slurm needed (bash is, to check the script's syntax)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from orze.slurm.client import JobState, live, parse_scontrol_job, parse_squeue
from orze.slurm.environment import allowed_gpus, heartbeat_fields, job_from_env, node_name
from orze.slurm.probe import audit
from orze.slurm.records import JobRecord
from orze.slurm.report import join, verdict
from orze.slurm.script import JobSpec, ScriptError, render_script, sbatch_options
from orze.slurm.settings import SlurmConfig, parse_slurm_time


def spec(**settings) -> JobSpec:
    grace = settings.pop("grace", 30.0)
    return JobSpec(root=Path("/lustre/camp"), jobs_dir=Path("/lustre/camp/runs/slurm/jobs"),
                   log_dir=Path("/lustre/camp/runs/slurm/logs"), python="/sw/venv/bin/python",
                   settings=SlurmConfig(**settings), shutdown_grace_s=grace)


@pytest.mark.parametrize("text,seconds", [("30", 1800), ("05:30", 330), ("2:00:00", 7200), ("1-00", 86400),
                                          ("1-02:03", 93780), ("1-02:03:04", 93784), ("UNLIMITED", None)])
def test_slurm_time_syntax(text, seconds):
    assert parse_slurm_time(text) == seconds


def test_bad_values_are_refused_with_their_name():
    for bad, field in (({"time": "2h"}, "time"), ({"nodes": 0}, "nodes"), ({"topology": "mpi"}, "topology"),
                       ({"partion": "gpu"}, "partion"), ({"sbatch": ["--signal=B:USR1@60"]}, "sbatch"),
                       ({"sbatch": ["exclusive"]}, "sbatch"), ({"partition": "a b"}, "partition"),
                       ({"mem": "lots"}, "mem"), ({"orze_args": ["--node", "n1"]}, "orze_args")):
        with pytest.raises(ValidationError) as e:
            SlurmConfig(**bad)
        assert field in str(e.value)
    with pytest.raises(ValidationError, match="--array is set by Orze"):
        SlurmConfig(sbatch=["#SBATCH --array=0-3"])


def test_every_setting_maps_to_its_flag():
    opts = sbatch_options(spec(nodes=4, gpus_per_node=8, gpu_type="h100", partition="gpu", account="proj",
                               qos="high", time="2-00:00:00", constraint="ib", cpus_per_task=32, mem="200G",
                               job_name="camp", sbatch=["--exclusive", "#SBATCH --mail-type=END"]))
    assert opts[:4] == ["--job-name=camp", "--array=0-3", "--nodes=1", "--ntasks=1"]
    for o in ("--gres=gpu:h100:8", "--partition=gpu", "--account=proj", "--qos=high", "--time=2-00:00:00",
              "--constraint=ib", "--cpus-per-task=32", "--mem=200G", "--signal=B:TERM@90", "--requeue",
              "--open-mode=append", "--output=/lustre/camp/runs/slurm/logs/%A_%a.out", "--chdir=/lustre/camp",
              "--exclusive", "--mail-type=END"):
        assert o in opts, o
    assert "--gpus-per-node=4" in sbatch_options(spec(gpus_per_node=4, gpu_flag="gpus-per-node"))
    assert not any(o.startswith(("--gres", "--gpus")) for o in sbatch_options(spec()))
    srun = sbatch_options(spec(topology="srun", nodes=3, requeue=False, signal_lead_s=120))
    assert "--nodes=3" in srun and "--ntasks-per-node=1" in srun and "--no-requeue" in srun
    assert "--signal=B:TERM@120" in srun and not any(o.startswith("--array") for o in srun)


def test_script_runs_orze_in_the_background_and_forwards_one_term():
    text = render_script(spec(until_idle=True, setup=["module load cuda/12"], orze_args=["--no-agents"]))
    assert "/sw/venv/bin/python -m orze run --root /lustre/camp --until-idle --no-agents &" in text
    assert "exec " not in text                      # a signal to the shell alone must reach orze run
    handler = text.split("on_term() {", 1)[1].split("}", 1)[0]
    assert handler.strip().startswith("trap '' TERM")   # requeueing itself signals the script again
    assert text.index("module load cuda/12") < text.index("-m orze run")
    # An array task requeues itself as <array>_<task>: its SLURM_JOB_ID may be the array's own id,
    # which scontrol reads as every task of the array.
    assert 'SELF="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in text
    assert 'scontrol requeue "$SELF"' in text and '[ ! -e "$STOP" ]' in text
    srun = render_script(spec(topology="srun", nodes=2))
    assert "srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=0" in srun
    assert 'scancel --signal=TERM "${SLURM_JOB_ID}.0"' in srun
    for t in (text, srun):
        subprocess.run(["bash", "-n"], input=t, text=True, check=True)


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(ScriptError, match="signal_lead_s"):
        render_script(spec(signal_lead_s=20, grace=30))
    with pytest.raises(ScriptError, match="slurm.time"):
        render_script(spec(time="2"))       # 120 s: the warning would come at once
    with pytest.raises(ScriptError, match="gpu_type"):
        render_script(spec(gpu_type="a100"))


ARRAY_ENV = {"SLURM_JOB_ID": "1237", "SLURM_ARRAY_JOB_ID": "1234", "SLURM_ARRAY_TASK_ID": "3",
             "SLURMD_NODENAME": "gpu017.cluster", "SLURM_RESTART_COUNT": "2", "CUDA_VISIBLE_DEVICES": "4,5"}


def test_job_and_node_name_from_slurm():
    job = job_from_env(ARRAY_ENV)
    assert (job.key, job.submitted_id, job.restart_count) == ("1234_3", "1234", 2)
    assert node_name(ARRAY_ENV) == "gpu017-1234_3"
    assert node_name({"SLURM_JOB_ID": "99", "SLURMD_NODENAME": "n1"}) == "n1-99"
    assert node_name({"SLURM_JOB_ID": "99"}) is None       # an salloc shell on a login node
    assert node_name({}) is None and heartbeat_fields({}) is None
    hb = heartbeat_fields(ARRAY_ENV)
    assert hb["job"] == "1234_3" and hb["gpus"] == "4,5" and hb["restart_count"] == 2


def test_gpus_come_from_the_allocation_not_the_machine():
    assert allowed_gpus({}, 8) == list(range(8))
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": "4,5"}, 8) == [4, 5]
    assert allowed_gpus({"SLURM_JOB_GPUS": "2,3"}, 8) == [2, 3]
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": "1", "SLURM_JOB_GPUS": "6"}, 8) == [1]   # what CUDA honours
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": ""}, 8) == []
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 8) == []
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": "0,9"}, 2) == [0]
    assert allowed_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f3a,1"}, 2) == [1]


def test_detect_gpus_respects_the_allocation(monkeypatch):
    """slots.detect_gpus through a stand-in NVML: the machine has 4 GPUs, the job was given 2."""
    import sys
    import types

    from orze.daemon import slots

    fake = types.SimpleNamespace(nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 4)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert slots.detect_gpus() == [1, 3]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("SLURM_JOB_GPUS", raising=False)
    monkeypatch.delenv("SLURM_STEP_GPUS", raising=False)
    assert slots.detect_gpus() == [0, 1, 2, 3]


def test_parse_slurm_output():
    rows = parse_squeue("12_0|13|RUNNING|vm|1:02|UNLIMITED|None\n12_1|12|PENDING||0:00|1:00:00|Resources\njunk\n")
    assert [(r.job, r.job_id, r.state, r.nodes) for r in rows] == [("12_0", "13", "RUNNING", "vm"),
                                                                   ("12_1", "12", "PENDING", "")]
    assert live(rows + [JobState("12_2", "14", "COMPLETED", "vm", "", "", "")]) == rows
    assert parse_scontrol_job("JobId=13 ArrayJobId=12 Restarts=2 Command=/a b=c")["Restarts"] == "2"


def _beat(node, job, now, age=1.0, stopped=False, running=1):
    return {"node": node, "updated_at": now - age, "stopped": stopped, "stopping": False,
            "slots": [{"run": "x"}] * running, "slurm": {"job": job, "submitted_id": job.split("_")[0],
                                                         "restart_count": 0}}


def test_status_join_shows_jobs_and_daemons_that_disagree():
    now = 1000.0
    rec = JobRecord(job_id="12", submitted_at=1.0, script="s", topology="array", nodes=3)
    states = [JobState("12_0", "13", "RUNNING", "n1", "1:00", "5:00", "None"),
              JobState("12_1", "14", "RUNNING", "n2", "1:00", "5:00", "None"),
              JobState("12_2", "12", "PENDING", "", "0:00", "6:00", "Priority")]
    beats = [_beat("n1-12_0", "12_0", now), _beat("n2-12_1", "12_1", now, age=500),
             _beat("n3-12_2", "12_2", now), _beat("old-12_0", "12_0", now, age=900, stopped=True)]
    rows = {r["job"]: r for r in join([rec], states, {}, beats, now)}
    assert rows["12_0"]["verdict"] == "ok" and rows["12_0"]["orze_node"] == "n1-12_0"
    assert rows["12_1"]["verdict"] == "job running, no daemon heartbeat"
    assert rows["12_2"]["verdict"] == "daemon heartbeating, job not running"
    assert verdict("PENDING", None, now) == "waiting for a node"
    assert verdict(None, _beat("n", "1", now, stopped=True), now) == "ended"
    gone = join([rec], [], {"12_0": "COMPLETED"}, [], now)
    assert [(r["job"], r["state"]) for r in gone][:2] == [("12_0", "COMPLETED"), ("12_1", "unknown (left Slurm's queue)")]


def test_probe_audit_counts_from_the_log_alone():
    def ev(kind, seed, t, pid):
        return {"event": kind, "seed": seed, "t": t, "pid": pid, "host": "h", "id": f"r{seed}"}
    log = [ev("start", 1, 0, 10), ev("end", 1, 1, 10),                 # clean
           ev("start", 2, 0, 11), ev("start", 2, 5, 12), ev("end", 2, 6, 12),   # interrupted, resumed
           ev("start", 3, 0, 13), ev("end", 3, 1, 13), ev("start", 3, 2, 14), ev("end", 3, 3, 14),  # twice
           ev("start", 4, 0, 15), ev("start", 4, 1, 16), ev("end", 4, 2, 16), ev("end", 4, 3, 15),  # at once
           ev("start", 5, 0, 17)]                                         # lost
    a = audit(log, [1, 2, 3, 4, 5])
    assert (a["done"], a["lost"], a["lost_ids"]) == (4, 1, [5])
    assert (a["run_twice_ids"], a["overlapping_ids"], a["interrupted_starts"]) == ([3, 4], [4], 2)
