"""Keeping each configured agent alive exactly once across all nodes (`orze run` calls `tick`).

Every node's daemon owns an `AgentHost(layout, node_id, specs)` and calls `.tick()` each loop
(non-blocking) and `.stop()` on shutdown. For each enabled agent:

  - The lease is runs/agents/<name>/lease (the one lease, orze.store.lease, created by the
    directory's `scheduler.claim_method`) holding {node, pid, token}. Exactly one node creates it;
    that node runs the agent.
  - The holder renews the lease by touching its mtime every lease_s/4 and re-reads it: if the
    token is no longer its own (another node broke it while this one was stalled), it stops its
    copy of the agent at once.
  - A lease is expired when its mtime is older than lease_s by the *filesystem's* clock (the mtime
    of a probe file just written in the same directory), never the local clock, since node clocks
    differ. An expired lease is broken by one atomic rename to a unique name (exactly one breaker's
    rename succeeds); the breaker then competes for a fresh exclusive create like everyone else.
  - The holder runs `python -m orze agent NAME --root ROOT` as a subprocess (output appended to
    runs/agents/<name>/agent.log), with ORZE_AGENT_LEASE=<token>, ORZE_AGENT_LEASE_S and
    ORZE_AGENT_HOST_PID in its environment: the agent watches its own lease (orze.agents.watch)
    and ends itself within the lease period when its host dies, stalls or loses the lease, so an
    orphan never runs beside a new copy.
  - A dead agent is restarted with exponential backoff, at most `max_restarts` times per holder;
    exit 0 (budget reached) and exit 78 (configuration error such as a missing API key) are final;
    exit 75 (the agent saw its lease as lost) is not counted as a failure.
    The state is written to runs/agents/<name>/state.json for `orze status`; `stop` writes
    `stopped`, and `read_states` reports an agent whose lease expired as `stopped (host gone)`.

A failing agent never raises out of `tick`: the daemon keeps running and the other agents go on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orze.agent_config import AgentSpec
from orze.layout import Layout
from orze.store.atomic import atomic_write_json, read_json_or_none
from orze.store.lease import Lease, new_token

LEASE = "lease"
STATE = "state.json"
LOG = "agent.log"
LEASE_ENV = "ORZE_AGENT_LEASE"
LEASE_S_ENV = "ORZE_AGENT_LEASE_S"
HOST_PID_ENV = "ORZE_AGENT_HOST_PID"
EXIT_CONFIG = 78
EXIT_LEASE_LOST = 75


def lease_path(layout: Layout, name: str) -> Path:
    return layout.agent_dir(name) / LEASE


def agent_lease(layout: Layout, name: str) -> Lease:
    """An agent's hosting lease: the one lease (orze.store.lease), by the directory's claim method."""
    return Lease(lease_path(layout, name), layout.claim_method)


def read_lease(path: Path) -> dict[str, Any] | None:
    return Lease(path).holder()


def lease_age(path: Path) -> float | None:
    """Seconds since the lease was last renewed, by the filesystem's clock; None if there is none."""
    age = Lease(path).age()
    return None if age == float("inf") else age


def try_acquire(lease: Lease, owner: dict[str, Any], lease_s: float) -> bool:
    """Create the lease exclusively, breaking it first if it expired. True if we now hold it."""
    lease.path.parent.mkdir(parents=True, exist_ok=True)
    if lease.acquire(owner):
        return True
    return lease.break_if_expired(lease_s) and lease.acquire(owner)


ACTIVE = ("running", "waiting")


def read_states(layout: Layout, lease_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """Every agent's last known host state (runs/agents/<name>/state.json) with its lease holder,
    for `orze status`. A state that claims to be active while the lease is missing or older than
    `lease_s` is reported as `stopped (host gone)`: its daemon exited or died."""
    out: dict[str, dict[str, Any]] = {}
    if not layout.agents.is_dir():
        return out
    for d in sorted(layout.agents.iterdir()):
        state = d / STATE
        if d.name.startswith("_") or not state.is_file():
            continue
        obj = read_json_or_none(state)
        if obj is None:
            continue
        lease = read_lease(d / LEASE)
        obj["lease_node"] = lease.get("node") if lease else None
        if obj.get("status") in ACTIVE:
            try:
                age = lease_age(d / LEASE)
            except OSError:
                age = None
            if lease is None or age is None or age > lease_s:
                obj["status"] = "stopped (host gone)"
                obj["detail"] = (f"lease expired {age - lease_s:.0f}s ago" if age is not None
                                 else "no lease") + (f"; last: {obj.get('detail')}" if obj.get("detail") else "")
        out[d.name] = obj
    return out


def holds(path: Path, token: str) -> bool:
    return Lease(path).held_by(token)


@dataclass
class _Slot:
    spec: AgentSpec
    token: str | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    last_renew: float = 0.0
    status: str = "idle"      # idle | running | waiting | finished | failed | lost
    detail: str = ""
    log: Any = field(default=None, repr=False)


class AgentHost:
    def __init__(self, layout: Layout, node_id: str, specs: list[AgentSpec], *, lease_s: float = 60.0,
                 max_restarts: int = 5, restart_backoff_s: float = 2.0, python: str = sys.executable,
                 env: dict[str, str] | None = None, sweeps: Any = None):
        self.layout = layout
        self.node_id = node_id
        self.lease_s = lease_s
        self.renew_s = lease_s / 4
        self.max_restarts = max_restarts
        self.restart_backoff_s = restart_backoff_s
        self.python = python
        self.env = env
        self.sweeps = sweeps
        self.slots = {s.name: _Slot(s) for s in specs if s.enabled}

    # ------------------------------------------------------------------ public
    def tick(self) -> None:
        for slot in self.slots.values():
            try:
                self._tick_one(slot)
            except OSError as e:  # a flaky shared filesystem must not kill the daemon
                slot.detail = f"host error: {e}"
        if self.sweeps is not None:
            try:
                self.sweeps.tick()
            except Exception as e:  # noqa: BLE001 - sweeps are best effort; reported, never fatal
                self._write_state_sweeps(str(e))

    def stop(self, grace_s: float = 10.0) -> None:
        for slot in self.slots.values():
            active = slot.token is not None and slot.status in ACTIVE
            self._kill(slot, grace_s)
            if slot.token:
                agent_lease(self.layout, slot.spec.name).release(slot.token)
            slot.token = None
            if active:  # finished / failed stay as they are
                slot.status, slot.detail = "stopped", f"host {self.node_id} stopped"
                try:
                    self._write_state(slot)
                except OSError:
                    pass
            slot.status = "idle"

    def busy(self) -> bool:
        """Whether hosted agents or sweeps may still add work (what `orze run --until-idle` waits
        for): an agent that is running or about to restart anywhere (by its lease and state) and
        not paused, or sweeps with an unexpanded base within their caps."""
        from orze.agents import health

        for name in self.slots:
            st = read_states(self.layout, self.lease_s).get(name, {})
            slot = self.slots[name]
            status = slot.status if slot.token else st.get("status")
            if slot.token is None and status is None:
                return True   # not started anywhere yet: it will be, on some node's next tick
            if status in ACTIVE:
                h = health.load(self.layout, name)
                if h.state != health.PAUSED:
                    return True
        if self.sweeps is not None:
            try:
                if self.sweeps.pending():
                    self.sweeps.tick(force=True)  # expand now rather than at the next interval
                    return True
            except Exception as e:  # noqa: BLE001 - a broken sweep never holds the daemon
                self._write_state_sweeps(str(e))
        return False
    def holding(self) -> list[str]:
        return [n for n, s in self.slots.items() if s.token]

    def states(self) -> dict[str, dict[str, Any]]:
        return {n: {"status": s.status, "restarts": s.restarts, "detail": s.detail,
                    "pid": s.proc.pid if s.proc else None} for n, s in self.slots.items()}

    # ------------------------------------------------------------------ internals
    def _tick_one(self, slot: _Slot) -> None:
        name = slot.spec.name
        path = lease_path(self.layout, name)
        now = time.monotonic()
        if slot.token is None:
            token = new_token()
            owner = {"node": self.node_id, "pid": os.getpid(), "token": token, "t": time.time()}
            if not try_acquire(agent_lease(self.layout, name), owner, self.lease_s):
                return
            slot.token, slot.last_renew = token, now
            slot.restarts, slot.next_start, slot.status = 0, 0.0, "waiting"
            self._write_state(slot)
        if not holds(path, slot.token):
            self._kill(slot)
            slot.token, slot.status, slot.detail = None, "lost", "lease taken over by another node"
            return
        if now - slot.last_renew >= self.renew_s:
            agent_lease(self.layout, name).renew()
            slot.last_renew = now
        self._supervise(slot, now)

    def _supervise(self, slot: _Slot, now: float) -> None:
        if slot.status in ("finished", "failed"):
            return
        proc = slot.proc
        if proc is not None and proc.poll() is None:
            return
        if proc is not None:
            rc = proc.returncode
            slot.proc = None
            tail = self._log_tail(slot)
            if rc == 0:
                slot.status, slot.detail = "finished", tail or "exited normally (budget or cycles reached)"
                self._write_state(slot)
                return
            if rc == EXIT_LEASE_LOST:
                # The agent thought its lease lost (our renewals were late); we still hold it.
                slot.status, slot.detail = "waiting", f"agent saw its lease as lost; restarting. {tail}"
                slot.next_start = now + self.restart_backoff_s
                self._write_state(slot)
                return
            if rc == EXIT_CONFIG:
                slot.status, slot.detail = "failed", tail or "configuration error"
                self._write_state(slot)
                return
            if slot.restarts >= self.max_restarts:
                slot.status = "failed"
                slot.detail = f"exited with {rc} {slot.restarts + 1} times; giving up. {tail}"
                self._write_state(slot)
                return
            slot.restarts += 1
            slot.next_start = now + self.restart_backoff_s * (2 ** (slot.restarts - 1))
            slot.status, slot.detail = "waiting", f"exited with {rc}; restart {slot.restarts} pending. {tail}"
            self._write_state(slot)
        if now >= slot.next_start:
            try:
                self._start(slot)
            except OSError as e:  # e.g. the interpreter vanished: counts as a failed start
                slot.proc = None
                if slot.restarts >= self.max_restarts:
                    slot.status, slot.detail = "failed", f"could not start: {e}; giving up"
                else:
                    slot.restarts += 1
                    slot.next_start = now + self.restart_backoff_s * (2 ** (slot.restarts - 1))
                    slot.status, slot.detail = "waiting", f"could not start: {e}"
                self._write_state(slot)

    def _start(self, slot: _Slot) -> None:
        name = slot.spec.name
        d = self.layout.agent_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ if self.env is None else self.env)
        env[LEASE_ENV] = slot.token or ""
        env[LEASE_S_ENV] = str(self.lease_s)
        env[HOST_PID_ENV] = str(os.getpid())
        env.setdefault("COLUMNS", "200")  # rich wraps at 80 columns without a terminal
        if slot.log is None or slot.log.closed:
            slot.log = open(d / LOG, "ab")
        cmd = [self.python, "-m", "orze", "agent", name, "--root", str(self.layout.root)]
        slot.proc = subprocess.Popen(cmd, stdout=slot.log, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, cwd=str(self.layout.root))
        slot.status, slot.detail = "running", f"pid {slot.proc.pid} on {self.node_id}"
        self._write_state(slot)

    def _kill(self, slot: _Slot, grace_s: float = 5.0) -> None:
        proc = slot.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        slot.proc = None
        if slot.log is not None:
            slot.log.close()
            slot.log = None

    def _log_tail(self, slot: _Slot) -> str:
        try:
            with open(self.layout.agent_dir(slot.spec.name) / LOG, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 400))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            # the last few lines, joined: rich may wrap one message over several
            return " ".join(ln.strip() for ln in lines[-4:])[-400:] if lines else ""
        except OSError:
            return ""

    def _write_state(self, slot: _Slot) -> None:
        atomic_write_json(self.layout.agent_dir(slot.spec.name) / STATE, {
            "agent": slot.spec.name, "node": self.node_id, "status": slot.status,
            "restarts": slot.restarts, "detail": slot.detail, "t": time.time()})

    def _write_state_sweeps(self, error: str) -> None:
        atomic_write_json(self.layout.agents / "_sweeps" / STATE,
                          {"node": self.node_id, "status": "error", "detail": error, "t": time.time()})
