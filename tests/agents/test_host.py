"""AgentHost with real `python -m orze agent` subprocesses: one copy per agent across nodes."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from orze.agents.host import AgentHost, lease_path, read_lease

from .conftest import REPO

PROJECT = """agents:
  - {name: rnd, policy: random, ideas_per_cycle: 2, queue_limit: 50, interval_s: 0.2, seed: 3}
  - {name: claude1, policy: claude}
"""


@pytest.fixture
def env():
    e = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ORZE_AGENT_LEASE")}
    e["PYTHONPATH"] = str(REPO)
    return e


def specs(layout):
    from orze.config import load_project
    return load_project(layout).agents


def wait_for(cond, timeout=30.0, step=0.1, tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick:
            tick()
        if cond():
            return True
        time.sleep(step)
    return False


def inbox_agents(layout):
    return [i["agent"] for p in layout.inbox.glob("*.yaml") for i in yaml.safe_load(p.read_text())]


def expire(path):
    old = time.time() - 3600
    os.utime(path, (old, old))


def test_lease_exclusive_then_taken_over(layout, env):
    layout.project_config.write_text(PROJECT)
    rnd = [s for s in specs(layout) if s.name == "rnd"]
    a = AgentHost(layout, "node-a", rnd, lease_s=5, env=env, python=sys.executable)
    b = AgentHost(layout, "node-b", rnd, lease_s=5, env=env, python=sys.executable)
    try:
        a.tick()
        b.tick()
        assert a.holding() == ["rnd"] and b.holding() == []
        lease = lease_path(layout, "rnd")
        assert read_lease(lease)["node"] == "node-a"
        assert wait_for(lambda: "rnd" in inbox_agents(layout), tick=lambda: (a.tick(), b.tick()))
        assert b.holding() == []                       # a live, renewed lease is never taken
        # node-a dies: its agent is gone and its lease stops being renewed (here: expired at once)
        a_proc = a.slots["rnd"].proc
        a_proc.kill()
        a_proc.wait()
        expire(lease)
        b.tick()
        assert b.holding() == ["rnd"] and read_lease(lease)["node"] == "node-b"
        assert b.slots["rnd"].proc is not None and b.slots["rnd"].proc.poll() is None
        a.tick()                                        # node-a comes back: it lost the lease
        assert a.holding() == [] and a.slots["rnd"].status == "lost"
        before = len(list(layout.inbox.glob("*.yaml")))
        assert wait_for(lambda: len(list(layout.inbox.glob("*.yaml"))) > before, tick=b.tick)
    finally:
        a.stop()
        b.stop()
    assert not lease.exists()


def test_orphaned_agent_exits_when_its_lease_is_taken(layout, env):
    layout.project_config.write_text(PROJECT)
    rnd = [s for s in specs(layout) if s.name == "rnd"]
    # The lease is expired by hand below; a long one keeps a slow start (a loaded CI machine) from
    # expiring it first, while node-a does not tick.
    a = AgentHost(layout, "node-a", rnd, lease_s=30, env=env)
    b = AgentHost(layout, "node-b", rnd, lease_s=30, env=env)
    try:
        a.tick()
        proc = a.slots["rnd"].proc
        assert wait_for(lambda: "rnd" in inbox_agents(layout))
        expire(lease_path(layout, "rnd"))              # node-a stalls; never ticks again
        b.tick()
        assert b.holding() == ["rnd"]
        assert proc.wait(timeout=30) == 75             # the orphan stopped by itself
        assert "taken over by another node" in (layout.agent_dir("rnd") / "agent.log").read_text()
    finally:
        a.slots["rnd"].proc = None
        b.stop()


def test_restarts_are_bounded_and_config_errors_are_final(layout, env, tmp_path):
    layout.project_config.write_text(PROJECT)
    crash = tmp_path / "crash.sh"
    crash.write_text("#!/bin/sh\necho boom\nexit 3\n")
    crash.chmod(0o755)
    rnd = [s for s in specs(layout) if s.name == "rnd"]
    crashing = AgentHost(layout, "node-a", rnd, lease_s=30, env=env, python=str(crash),
                         max_restarts=2, restart_backoff_s=0.05)
    assert wait_for(lambda: crashing.slots["rnd"].status == "failed", tick=crashing.tick, timeout=20)
    assert crashing.slots["rnd"].restarts == 2
    state = json.loads((layout.agent_dir("rnd") / "state.json").read_text())
    assert state["status"] == "failed" and "giving up" in state["detail"] and "boom" in state["detail"]
    crashing.stop()

    both = AgentHost(layout, "node-b", specs(layout), lease_s=30, env=env, max_restarts=3)
    try:
        assert wait_for(lambda: both.slots["claude1"].status == "failed", tick=both.tick)
        assert both.slots["claude1"].restarts == 0                 # exit 78: never restarted
        assert "ANTHROPIC_API_KEY" in both.slots["claude1"].detail
        assert both.slots["rnd"].status == "running"               # the other agent goes on
        assert wait_for(lambda: "rnd" in inbox_agents(layout), tick=both.tick)
    finally:
        both.stop()


def test_two_agents_reach_the_queue_each_attributed(layout, env):
    layout.project_config.write_text(
        "agents:\n"
        "  - {name: explorer, policy: random, ideas_per_cycle: 3, queue_limit: 50, interval_s: 0, seed: 1}\n"
        "  - {name: tuner, policy: tpe, ideas_per_cycle: 3, queue_limit: 50, interval_s: 0, seed: 2}\n")
    layout.rules_prompt.write_text("no rules\n")
    procs = [subprocess.Popen([sys.executable, "-m", "orze", "agent", name, "--root", str(layout.root),
                               "--cycles", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for name in ("explorer", "tuner")]
    outs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    ideas = [(p.name, i) for p in layout.inbox.glob("*.yaml") for i in yaml.safe_load(p.read_text())]
    by_agent = {}
    for fname, idea in ideas:
        assert f"-{idea['agent']}-" in fname                   # the file names its agent too
        by_agent.setdefault(idea["agent"], []).append(idea)
    assert sorted(by_agent) == ["explorer", "tuner"]
    assert len(by_agent["explorer"]) == 6 and len(by_agent["tuner"]) == 6
    assert {i["source"] for i in by_agent["explorer"]} == {"random"}
    assert {i["source"] for i in by_agent["tuner"]} == {"tpe"}


def test_unstartable_agent_is_bounded_and_state_is_readable(layout, env, tmp_path):
    from orze.agents.host import read_states
    layout.project_config.write_text(PROJECT)
    rnd = [s for s in specs(layout) if s.name == "rnd"]
    host = AgentHost(layout, "node-a", rnd, lease_s=30, env=env, python=str(tmp_path / "no-python"),
                     max_restarts=2, restart_backoff_s=0.01)
    assert wait_for(lambda: host.slots["rnd"].status == "failed", tick=host.tick, timeout=10)
    states = read_states(layout)
    assert states["rnd"]["status"] == "failed" and "could not start" in states["rnd"]["detail"]
    assert states["rnd"]["lease_node"] == "node-a"
    host.stop()
    assert read_states(layout)["rnd"]["lease_node"] is None
