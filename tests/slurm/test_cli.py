"""`orze slurm` commands that need no Slurm: settings errors, --dry-run; and the daemon hook that
releases (rather than fails) an experiment whose worker a scheduler signalled with the daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import yaml

from orze.layout import Layout
from orze.slurm.probe import default_log, read_log
from orze.store import queue
from orze.store.events import read_events
from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, orze_env, run_orze
from tests.slurm.conftest import probe_dir, wait_for


def _set_slurm(layout: Layout, section: dict) -> None:
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["slurm"] = section
    layout.project_config.write_text(yaml.safe_dump(proj))


def _err(proc) -> str:
    return proc.stderr.replace("\n", "")   # the error console wraps long paths


def test_bad_slurm_key_is_rejected_with_its_name(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=())
    _set_slurm(layout, {"partion": "gpu"})
    out = run_orze("slurm", "submit", "--dry-run", root=layout.root, check=False)
    assert out.returncode == 2 and "slurm.partion" in _err(out) and "configs/orze.yaml" in _err(out), out.stderr
    run = run_orze("run", "--once", root=layout.root, check=False)   # the daemon refuses it too
    assert run.returncode == 2 and "slurm.partion" in _err(run)
    _set_slurm(layout, {"sbatch": ["--requeue"]})
    out = run_orze("slurm", "submit", "--dry-run", root=layout.root, check=False)
    assert out.returncode == 2 and "--requeue is set by Orze" in _err(out), out.stderr
    _set_slurm(layout, {})
    out = run_orze("slurm", "submit", "--dry-run", "--time", "soon", root=layout.root, check=False)
    assert out.returncode == 2 and "slurm settings" in _err(out) and "not a Slurm time" in _err(out), out.stderr


def test_dry_run_writes_and_shows_the_script_options_over_config(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=())
    _set_slurm(layout, {"partition": "cpu", "nodes": 2, "sbatch": ["--exclusive"], "setup": ["module load x"]})
    out = run_orze("slurm", "submit", "--dry-run", "--partition", "gpu", "--gpus-per-node", "4", "--qos", "hi",
                   "--account", "a1", "--time", "1-00:00:00", "--constraint", "h100", root=layout.root).stdout
    (script,) = layout.slurm.glob("*.sbatch")
    text = script.read_text()
    assert text in out.replace("\r", "") or text.splitlines()[3] in out
    for line in ("#SBATCH --array=0-1", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:4", "#SBATCH --qos=hi",
                 "#SBATCH --account=a1", "#SBATCH --time=1-00:00:00", "#SBATCH --constraint=h100",
                 "#SBATCH --exclusive", "module load x", f"--output={layout.slurm_logs}/%A_%a.out"):
        assert line in text, line
    assert not layout.slurm_jobs.exists() or not list(layout.slurm_jobs.glob("*.json"))  # nothing submitted
    assert "not submitted (--dry-run)" in out


def test_submit_outside_a_research_directory_is_refused(tmp_path):
    out = run_orze("slurm", "submit", "--dry-run", root=tmp_path, check=False)
    assert out.returncode == 2 and "not a research directory" in _err(out)


def test_worker_signalled_with_the_daemon_is_released_not_failed(tmp_path):
    """What Slurm does on a hard requeue or preemption: SIGTERM to every process of the job, the
    workers (in sessions of their own) included. The experiment goes back to the queue unchanged,
    no attempt used, even with max_attempts 1, and runs to completion later."""
    layout = probe_dir(tmp_path / "r", sleep_s=30.0, grace_s=5.0)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["scheduler"]["max_attempts"] = 1
    layout.project_config.write_text(yaml.safe_dump(proj))
    (tmp_path / "i.yaml").write_text(yaml.safe_dump([{"seed": 1}]))
    run_orze("submit", str(tmp_path / "i.yaml"), root=layout.root)
    proc = subprocess.Popen([sys.executable, "-m", "orze", "run", "--quiet", "--root", str(layout.root)],
                            env=orze_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (start,) = wait_for(lambda: read_log(default_log(layout.root)), 60, "the worker to start")
    worker = start["pid"]
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(worker, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert read_rows(layout.leaderboard) == [] and queue.depth(layout) == 1
    (entry,) = [queue.read(layout, n) for n in queue.list_names(layout)]
    assert entry.attempts == 0
    assert any(e["event"] == "released" and "signalled" in e["reason"] for e in read_events(layout))
    proj["worker"]["command"] = [sys.executable, "-m", "orze.slurm.probe", "--sleep", "0"]
    layout.project_config.write_text(yaml.safe_dump(proj))
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    (row,) = read_rows(layout.leaderboard)
    assert row["status"] == "done" and row["attempts"] == 1
