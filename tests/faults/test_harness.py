"""scripts/faults.py at CI size: daemons killed (some while admitting), frozen past the lease,
frozen inside the leaderboard/events lock, workers killed; and, where a tmpfs can be mounted, the
disk filled mid-campaign. Executions are counted by the worker itself."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "faults.py"


def load():
    spec = importlib.util.spec_from_file_location("faults_harness", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kills_pauses_and_stalls_lose_nothing_and_run_nothing_twice(tmp_path):
    out = load().run(tmp_path / "campaign", tmp_path / "harness", daemons=2, ideas=60, duplicates=6,
                     kills=4, admission_kills=2, worker_kills=2, pauses=1, stalls=1, lease_s=3.0,
                     seed=1, timeout_s=400)
    assert out["faults"].get("kill", 0) + out["faults"].get("admission_kill", 0) >= 2, out
    assert out["lost"] == 0 and out["recorded_twice"] == 0, out
    assert out["overlapping_executions"] == 0, out
    assert not any(out["stuck"].values()), out
    assert out["duplicates_refused"] == 6 and out["done"] == 60, out
    assert out["faults"].get("unexpected_exits", 0) == 0, out
    assert out["ok"], out


def _can_mount_tmpfs(tmp_path) -> bool:
    d = tmp_path / "probe"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    if r.returncode == 0:
        subprocess.run(["umount", str(d)], capture_output=True)
        return True
    return False


def test_a_full_disk_keeps_the_daemons_alive_and_loses_nothing(tmp_path):
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full case is not exercised")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--disk-full", "--daemons", "2", "--ideas", "80",
                           "--duplicates", "0", "--kills", "0", "--admission-kills", "0", "--worker-kills", "0",
                           "--pauses", "0", "--stalls", "0", "--lease", "3", "--tmpfs-mb", "48",
                           "--full-s", "6", "--timeout", "400"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    import json
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert out["faults"]["alive_while_full"] == 2 and out["lost"] == 0 and out["done"] == 80, out
