"""A run directory is never written by two executions: an execution whose lease lapses (its daemon
frozen or gone) or whose claim was taken over stops itself before another node may start the run
(orze/worker/fence.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from orze.layout import RUN_CLAIM, RUN_FAILURE, RUN_HEARTBEAT
from orze.worker.fence import FENCE_SHARE, FENCED_EXIT, LEASE_ENV, Fence
from tests.conftest import orze_env


def claimed(run_dir, token="tok-1"):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_CLAIM).write_text(json.dumps({"node": "n1", "token": token}))
    (run_dir / RUN_HEARTBEAT).write_text("0\n")
    return run_dir


def test_fence_reads_lapse_from_heartbeat_age_and_claim_token(tmp_path):
    run_dir = claimed(tmp_path / "r")
    fence = Fence(run_dir, lease_s=10)
    assert fence.lapsed() is None
    old = time.time() - (FENCE_SHARE * 10 + 2)
    os.utime(run_dir / RUN_HEARTBEAT, (old, old))
    assert "not renewed" in fence.lapsed()
    os.utime(run_dir / RUN_HEARTBEAT)
    (run_dir / RUN_CLAIM).write_text(json.dumps({"node": "n2", "token": "tok-2"}))
    assert "another execution" in fence.lapsed()
    (run_dir / RUN_CLAIM).unlink()
    assert "broken" in fence.lapsed()


def test_a_custom_worker_under_the_fence_is_killed_when_its_lease_lapses(tmp_path):
    run_dir = claimed(tmp_path / "r")
    marker = tmp_path / "still-running"
    child = f"import time\nwhile True:\n    open({str(marker)!r}, 'a').write('x')\n    time.sleep(0.05)\n"
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "orze.worker.fence", "--", sys.executable, "-c", child,
                             str(run_dir)], env=orze_env({LEASE_ENV: "2"}), start_new_session=True)
    # Nobody renews the heartbeat: the fence must stop the command within about lease/2. It kills
    # its whole process group, itself included (so nothing the command started survives).
    assert proc.wait(timeout=30) in (FENCED_EXIT, -9)
    assert time.monotonic() - t0 < 2.0 + 3.0
    assert json.loads((run_dir / RUN_FAILURE).read_text())["class"] == "fenced"
    size = marker.stat().st_size
    time.sleep(0.3)
    assert marker.stat().st_size == size, "the command itself was killed, not only the fence"


def test_the_builtin_worker_fences_itself_when_its_claim_is_taken_over(tmp_path):
    run_dir = claimed(tmp_path / "r")
    code = ("import sys, time\nfrom orze.worker.fence import watching\n"
            f"with watching({str(run_dir)!r}, 60):\n    time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=orze_env())
    time.sleep(1.0)
    (run_dir / RUN_CLAIM).write_text(json.dumps({"node": "n2", "token": "tok-2"}))  # broken and re-taken
    assert proc.wait(timeout=20) == FENCED_EXIT
    assert "another execution" in json.loads((run_dir / RUN_FAILURE).read_text())["message"]


def test_a_renewed_lease_is_never_fenced(tmp_path):
    run_dir = claimed(tmp_path / "r")
    code = ("import time\nfrom orze.worker.fence import watching\n"
            f"with watching({str(run_dir)!r}, 2):\n    time.sleep(3)\nprint('finished')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=orze_env(), stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        os.utime(run_dir / RUN_HEARTBEAT)
        time.sleep(0.2)
    assert proc.returncode == 0 and "finished" in proc.stdout.read()
