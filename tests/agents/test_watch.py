"""A hosted agent ends itself within the lease period when its host is gone: the host process
killed with SIGKILL (seen through the parent), or stalled (SIGSTOP: seen through the lease, which
is no longer renewed). Real host and agent processes."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from orze.agent_config import AgentSpec
from orze.agents import health
from orze.agents.health import Health
from orze.agents.host import read_states

from .conftest import REPO

LEASE_S = 10.0  # the agent must be gone within it: stale after 5 s, checked each second, 2.5 s grace
HOST = textwrap.dedent("""
    import sys, time
    from orze.agents.host import AgentHost
    from orze.config import load_project
    from orze.layout import Layout
    layout = Layout.at(sys.argv[1])
    host = AgentHost(layout, "node-a", load_project(layout).agents, lease_s=float(sys.argv[2]))
    while True:
        host.tick()
        time.sleep(0.2)
""")


@pytest.fixture
def hosted(layout, tmp_path):
    layout.project_config.write_text(
        "agents:\n  - {name: rnd, policy: random, ideas_per_cycle: 1, queue_limit: 100000, interval_s: 0.3}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORZE_AGENT")}
    env["PYTHONPATH"] = str(REPO)
    script = tmp_path / "host.py"
    script.write_text(HOST)
    host = subprocess.Popen([sys.executable, str(script), str(layout.root), str(LEASE_S)], env=env)
    state = layout.agent_dir("rnd") / "state.json"
    deadline = time.monotonic() + 60
    pid = None
    while time.monotonic() < deadline and pid is None:
        try:
            st = json.loads(state.read_text())
            if st["status"] == "running" and list(layout.inbox.glob("*.yaml")):
                pid = int(st["detail"].split()[1])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    assert pid, "the hosted agent never started"
    yield host, pid
    for p in (host.pid, pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    host.wait()


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its reparented parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def gone_within(pid, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if not alive(pid):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


def last_inbox_write(layout):
    return max((p.stat().st_mtime for p in layout.inbox.glob("*.yaml")), default=0.0)


def test_agent_ends_itself_when_its_host_is_killed(layout, hosted):
    host, pid = hosted
    host.send_signal(signal.SIGKILL)
    host.wait()
    killed = time.time()
    took = gone_within(pid, LEASE_S)
    assert took is not None, "the agent outlived its killed host by the whole lease period"
    assert last_inbox_write(layout) <= killed + took + 0.1
    # `orze status` does not call it running once its lease expired
    time.sleep(LEASE_S + 0.5)
    assert read_states(layout, LEASE_S)["rnd"]["status"] == "stopped (host gone)"


def test_agent_ends_itself_when_its_host_stalls(layout, hosted):
    host, pid = hosted
    host.send_signal(signal.SIGSTOP)            # alive but no longer renewing the lease
    try:
        took = gone_within(pid, LEASE_S)
        assert took is not None, "the agent ran on beside a stalled host"
        assert took <= LEASE_S
        assert "not renewed" in (layout.agent_dir("rnd") / "agent.log").read_text()
    finally:
        host.send_signal(signal.SIGCONT)


def test_health_transitions_are_pure():
    spec = AgentSpec(name="a", policy="random", failure_backoff_s=10, failure_backoff_max_s=25,
                     pause_after_failures=4, pause_s=100)
    h = Health()
    waits = []
    for k in range(5):
        h = health.next_state(h, True, "boom", spec, now=1000.0)
        waits.append((h.state, h.until - 1000.0))
    assert waits == [("backing off", 10), ("backing off", 20), ("backing off", 25), ("paused", 100),
                     ("paused", 100)]      # a failing trial after a pause re-opens at once
    assert health.next_state(h, False, "", spec, now=2000.0).state == "ok"
    h = health.next_state(Health(), True, "HTTP 401", spec, now=0.0, permanent=True)
    assert h.state == "paused" and "permanent" in h.reason
    h = health.next_state(Health(), True, "429", spec, now=0.0, retry_after=300)
    assert h.state == "backing off" and h.until == 300
