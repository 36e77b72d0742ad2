"""`orze status` for agents: circuit state with its reason, a host that is gone, every rejection."""

import json
import time

from orze.agents import health, ledger
from orze.agents.health import Health
from orze.status import agent_state, gather
from orze.store.atomic import atomic_write_json


def test_agent_state_prefers_the_circuit_while_hosted():
    now = 1000.0
    paused = {"state": "paused", "until": 4600.0, "reason": "permanent error: HTTP 401"}
    assert agent_state({"status": "running"}, paused, now) == ("paused (3600s left)", "permanent error: HTTP 401")
    assert agent_state({"status": "running"}, {"state": "paused", "until": 10.0}, now)[0] == "running"
    assert agent_state({"status": "stopped (host gone)", "detail": "no lease"}, paused, now) == \
        ("stopped (host gone)", "no lease")


def test_gather_shows_a_paused_agent_and_a_gone_host(layout):
    d = layout.agent_dir("c1")
    atomic_write_json(d / "state.json", {"agent": "c1", "node": "n1", "status": "running", "t": time.time()})
    ledger.append(layout, "c1", {"kind": "cycle", "proposed": 4, "submitted": 1, "rejected": 3, "status": "submitted"})
    health.save(layout, "c1", Health("paused", 8, time.time() + 600, "8 failing cycles in a row: prose"))
    a = gather(layout)["agents"]["c1"]
    assert a["state"] == "stopped (host gone)"          # no lease: its daemon is gone
    assert (a["proposed"], a["submitted"], a["rejected"]) == (4, 1, 3)
    (d / "lease").write_text(json.dumps({"node": "n1", "token": "t"}))
    a = gather(layout)["agents"]["c1"]
    assert a["state"].startswith("paused") and "8 failing cycles" in a["why"]
