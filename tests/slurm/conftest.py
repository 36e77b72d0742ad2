"""A real one-node Slurm on localhost for the whole session (orze/slurm/localcluster.py), and
research directories whose worker is the probe (orze/slurm/probe.py).

Skipped, with the reason, only where the Slurm or munge binaries are absent or the tests do not
run as root (slurmd must be able to run jobs as their user); .ci/run installs slurm-wlm and munge.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orze.slurm.localcluster import LocalSlurm, missing_binaries
from tests.conftest import make_research_dir, orze_env


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm tests need slurm-wlm and munge (apt-get install -y slurm-wlm munge); missing: "
                    f"{', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("Slurm tests start slurmd, which must run as root")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), cpus=8, gpus=2)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def clean_queue(slurm):
    """Each test starts with no job of an earlier one left on the cluster."""
    yield slurm
    subprocess.run(["scancel", "--user=root"], env=slurm.env(), capture_output=True, timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm.env(), capture_output=True, text=True,
                             timeout=30).stdout.strip()
        if not out:
            break
        time.sleep(0.5)


def probe_dir(path: Path, sleep_s: float, grace_s: float = 2.0, slurm: dict | None = None):
    """A research directory whose worker is the probe (sleeps, logs each real start and end)."""
    project = {"worker": {"command": [sys.executable, "-m", "orze.slurm.probe", "--sleep", str(sleep_s)]},
               "scheduler": {"cpu_slots": 1, "shutdown_grace_s": grace_s, "lease_s": 30, "heartbeat_s": 1,
                             "poll_s": 0.2},
               "slurm": {"signal_lead_s": 30, **(slurm or {})}}
    layout = make_research_dir(path, project=project, backbones=())
    layout.clips_csv.unlink()  # a task of its own: no split check
    return layout


def orze(cluster: LocalSlurm, *args: str, root: Path, check: bool = True, timeout: float = 120):
    proc = subprocess.run([sys.executable, "-m", "orze", *args, "--root", str(root)], env=cluster.env(orze_env()),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"orze {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def submit_ideas(cluster, layout, seeds) -> None:
    path = layout.root / "ideas.yaml"
    path.write_text(yaml.safe_dump([{"seed": s} for s in seeds]))
    orze(cluster, "submit", str(path), root=layout.root)


def squeue_states(cluster, job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%i %T"], env=cluster.env(),
                         capture_output=True, text=True, timeout=30).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def wait_for(cond, timeout_s: float, what: str, cluster=None):
    deadline = time.time() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if cluster is not None:
            assert cluster.alive(), f"a Slurm daemon died while waiting for {what}; see {cluster.base}/log"
        assert time.time() < deadline, f"timed out after {timeout_s}s waiting for {what}"
        time.sleep(0.5)
