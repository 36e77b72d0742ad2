"""The node daemon: one `orze run` per compute node, all sharing one research directory.

The daemon is the loop that wires the parts; each part has one job:
  admission.Admitter     inbox files → validated, deduplicated ideas in the queue
  scheduling.Scheduler   which queued idea starts on which free slot (priority, memory packing)
  supervisor.Launcher    starting an experiment (warm job or cold process), timeouts and stalls
  record.gather          the evidence of a finished attempt; outcome.decide: record / retry / heal
  leases.LeaseKeeper     renewing this node's leases, breaking dead nodes', restart recovery
  store.transitions      every move of a run between states, each with one event
  slot_state.SlotTable   one object per slot; heartbeat.snapshot what `orze status` shows

Each pass: reap finished workers, admit, fill free slots, enforce timeouts and stalls, renew leases,
break expired ones, keep agents alive, publish the heartbeat. Between passes the daemon sleeps until
a worker exits or reports (pidfd, or a warm worker's event pipe) or the next scan is due.

Stopping (SIGINT/SIGTERM, or the run bounds): no new work is claimed; running experiments get
`shutdown_grace_s` to finish, then are killed and released back to the queue. A second signal
releases them at once. Nothing claimed is ever left in limbo.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from orze.config import ProjectConfig
from orze.daemon.accounting import Counters
from orze.daemon.admission import Admitter
from orze.daemon.heartbeat import publish, snapshot
from orze.daemon.leases import LeaseKeeper
from orze.daemon.packing import MemoryLedger
from orze.daemon.pruner import Pruner
from orze.daemon.record import conclude
from orze.daemon.scheduling import Scheduler
from orze.daemon.slot_state import SlotState, SlotTable
from orze.daemon.slots import Slot, device_capacities, plan_node_slots
from orze.daemon.supervisor import Launcher, Running, overdue, wait_for
from orze.daemon.warm import WarmPool
from orze.layout import Layout
from orze.space import Space
from orze.store.transitions import Transitions
from orze.vocab import EventKind, WorkerMode

log = logging.getLogger(__name__)

STARTUP_READY_S = 300.0   # how long `orze run` waits for its warm workers before scheduling anyway


@dataclass
class RunBounds:
    max_experiments: int | None = None   # stop claiming after this many starts
    until_idle: bool = False             # exit when inbox, queue and slots are all empty
    once: bool = False                   # one admission + scheduling pass, then finish those runs


def default_node_id() -> str:
    return socket.gethostname().split(".")[0] or "node"


class Daemon:
    def __init__(self, layout: Layout, project: ProjectConfig, space: Space, node: str | None = None,
                 bounds: RunBounds | None = None, slots: list[Slot] | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None, agent_host: Any = None,
                 notifier: Any = None):
        self.layout = layout.with_claim_method(project.scheduler.claim_method).ensure()
        self.project, self.space, self.sched = project, space, project.scheduler
        self.node = node or default_node_id()
        self.bounds = bounds or RunBounds()
        self.mode = project.worker.resolved_mode
        self.counters = Counters()
        self.transitions = Transitions(self.layout, self.node,
                                       listeners=[self.counters.count] + ([on_event] if on_event else []))
        slots = slots if slots is not None else plan_node_slots(project)
        self.table = SlotTable.create(slots, MemoryLedger(device_capacities(slots, self.sched)))
        self.scheduler = Scheduler(self.layout, self.sched, self.table, self.transitions.tail)
        env = {**os.environ, "ORZE_ROOT": str(self.layout.root)}
        self.pool = WarmPool(slots, project.worker, env, self.layout.node_dir(self.node), self.layout.root) \
            if self.mode == WorkerMode.WARM else None
        self.launcher = Launcher(self.layout, project.worker, self.pool, env)
        self.leases = LeaseKeeper(self.layout, self.node, self.transitions, self.sched.lease_s)
        self.admitter = Admitter(self.layout, space, project.admission, self.node, transitions=self.transitions)
        self.pruner = Pruner(self.layout, project, space, self.transitions.emit, self.node)  # docs/pruning.md
        self.agent_host = agent_host
        self.notifier = notifier  # orze.notify.Notifier: derives events from files, sends in the background
        self.started_at = time.time()
        self.stopping, self.signals, self.stop_deadline = False, 0, None
        self._announce: tuple[str, float] | None = None   # a stop to record in the event log
        self.passes = 0   # loop passes: event-driven, so about one per event or scan, never a spin
        self._next_admit = self._next_beat = self._next_reap = 0.0

    # --- stopping ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            self.signals += 1
            self.request_stop(immediate=self.signals > 1, reason=signal.Signals(signum).name)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def request_stop(self, immediate: bool = False, reason: str = "stop") -> None:
        """Safe in a signal handler: no I/O here (the handler may interrupt a locked write); the
        loop announces the stop with its next pass."""
        grace = 0.0 if immediate else self.sched.shutdown_grace_s
        if not self.stopping:
            self._announce = (reason, grace)
        self.stopping = True
        deadline = time.monotonic() + grace
        self.stop_deadline = deadline if self.stop_deadline is None else min(self.stop_deadline, deadline)

    def _announce_stop(self) -> None:
        if self._announce is not None:
            (reason, grace), self._announce = self._announce, None
            self.transitions.emit(EventKind.NODE_STOPPING, node=self.node, reason=reason, grace_s=grace)

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> Counters:
        self.leases.recover_own()
        self.scheduler.learn()
        if self.pool is not None:
            self.pool.wait_ready(STARTUP_READY_S)  # torch imported, devices up, before any claim
        self.transitions.emit(EventKind.NODE_STARTED, node=self.node, mode=str(self.mode),
                              slots=[s.slot.label for s in self.table.states])
        try:
            while True:
                self.step()
                if self.finished():
                    break
                self.wait()
        finally:
            self.shutdown()
        return self.counters

    def step(self) -> None:
        self.passes += 1
        now = time.monotonic()
        self._announce_stop()
        self.reap()
        if self.stopping and self.stop_deadline is not None and now >= self.stop_deadline:
            for r in self.table.running():
                self.release(r, "shutdown")
        if not self.stopping:
            if now >= self._next_admit or self.bounds.once:
                self.admit()
                self.scheduler.learn()
                self._next_admit = now + self.sched.poll_s
            if self.pool is not None:
                self.pool.tend()
            self.scheduler.fill(self._free(), self._start, self._may_start)
            self.table.note_waiting(self._free(), self._work_waiting())
            if self.bounds.once:
                self.stopping, self.stop_deadline = True, None  # finish what was started, claim no more
        self.supervise()
        self.pruner.tick(self.table.running())
        if now >= self._next_beat:
            self.heartbeat()
            self._next_beat = now + min(self.sched.heartbeat_s, self.sched.lease_s / 4)
        if now >= self._next_reap:
            self.break_expired_leases()
            self._next_reap = now + self.sched.lease_s / 4
        if self.agent_host is not None and not self.stopping:
            try:
                self.agent_host.tick()
            except Exception:  # an agent problem must never take the daemon down
                log.exception("agent host failed; the daemon goes on")
        if self.notifier is not None:
            try:
                self.notifier.tick()
            except Exception:  # nor may a notification problem
                log.exception("notifier failed; the daemon goes on")

    def finished(self) -> bool:
        if self.stopping or self.bounds.max_experiments is not None:
            self.table.note_waiting(self._free(), self._work_waiting())
        if self.stopping:
            return not self.table.running()
        if not self._may_start():
            self.stopping, self.stop_deadline = True, None
            return not self.table.running()
        if self.bounds.until_idle and not self.table.running() and not self.admitter.pending():
            self.scheduler.queue_view.refresh(force=True)
            if len(self.scheduler.queue_view) == 0 and self.agent_host is not None and self.agent_host.busy():
                return False  # hosted agents or sweeps may still add work (docs/agents.md)
            return len(self.scheduler.queue_view) == 0
        return False

    def wait(self) -> None:
        """Sleep until a worker exits or reports, or the next scheduled scan, whichever is first."""
        now = time.monotonic()
        horizon = min(self._next_admit, self._next_beat, self._next_reap, self.stop_deadline or float("inf"))
        if self._free() and not self.stopping and len(self.scheduler.queue_view) > 0 \
                and not self.scheduler.memory_blocked:
            return  # work is waiting and a slot is free (and memory is not what holds it back)
        fds = [fd for fd in (r.fileno() for r in self.table.running()) if fd is not None]
        if self.pool is not None and not self.stopping:
            fds += self.pool.starting_fds()
        wait_for(fds, max(0.0, min(horizon - now, 1.0)), busy=bool(self.table.running()))

    # --- admission and starts ----------------------------------------------------------------
    def admit(self) -> None:
        try:
            report = self.admitter.admit_pending()
        except OSError as e:  # a full disk or a vanished mount: retried next pass
            log.error("admission failed: %s; retrying next pass", e)
            return
        if report.admitted:
            self.scheduler.queue_view.invalidate()

    def _free(self) -> list[SlotState]:
        """Slots that can take an experiment now: nothing running, and a ready worker if warm."""
        return [s for s in self.table.idle() if self.pool is None or self.pool.ready(s.index)]

    def _may_start(self) -> bool:
        m = self.bounds.max_experiments
        return m is None or self.counters.started < m

    def _work_waiting(self) -> bool:
        """Work is queued that this node would start now (not while stopping or at its bound)."""
        return not self.stopping and self._may_start() and len(self.scheduler.queue_view) > 0

    def _start(self, name: str, state: SlotState, attempt: int, need: tuple[float, str]) -> bool:
        started = self.transitions.start(
            name, state.index, attempt, device=state.slot.device,
            launch=lambda entry, run_dir, at: self.launcher.launch(entry, run_dir, state.slot, at, attempt))
        if started is None:
            self.scheduler.queue_view.invalidate()
            return False
        self.table.occupy(state, started[1], need, started[1].started_at)
        return True

    # --- running and finished experiments ----------------------------------------------------
    def supervise(self) -> None:
        now = time.time()
        for r in self.table.running():
            if r.poll() is None and (why := overdue(r, now, self.sched.timeout_min * 60, self.sched.stall_min * 60)):
                r.kill(why)

    def reap(self) -> None:
        for state in self.table.states:
            r = state.running
            if r is None or (code := r.poll()) is None:
                continue
            r.close()
            estimate = self.table.vacate(state, self._work_waiting())
            if getattr(r.handle, "never_started", False):
                # The slot's warm worker died before it could start this experiment: back to the
                # queue as it was (no attempt used); the pool replaces the worker or runs cold.
                self.transitions.release(r.entry, f"warm worker {r.pid} died before starting it")
                self.scheduler.queue_view.invalidate()
                continue
            if self.stopping and code < 0 and r.stop_reason is None:
                # Killed by a signal while we stop: a scheduler signalling the whole job (Slurm's
                # requeue or preemption), not the experiment failing. Back, no attempt used.
                self.transitions.release(r.entry, f"worker signalled ({-code}) while the node stops")
                self.scheduler.queue_view.invalidate()
                continue
            if not self.leases.owns(r):
                self.transitions.discard(r.entry.id, "lease lost while running; result discarded")
                continue
            try:
                row = conclude(self.layout, self.project, self.transitions, self.space, r, code, estimate,
                               self.node)
            except OSError as e:  # a full disk: keep the run claimed; its lease's expiry recovers it
                log.error("%s: cannot record the result (%s); left claimed for recovery", r.entry.id, e)
                continue
            if row is None:
                self.scheduler.queue_view.invalidate()   # re-queued for another attempt
            else:
                self.scheduler.peaks.add(row)  # learned at once, before this slot is refilled

    def release(self, r: Running, reason: str) -> None:
        """Kill a running worker and put its idea back on the queue, unchanged."""
        r.kill(reason, grace=2.0)
        r.close()
        self.table.vacate(self.table.by_index[r.slot], self._work_waiting())
        self.transitions.release(r.entry, reason)
        self.scheduler.queue_view.invalidate()

    # --- leases and heartbeat ----------------------------------------------------------------
    @property
    def recorded_ids(self) -> set[str]:
        """Ids of every run on the leaderboard (as of the last incremental read)."""
        return self.transitions.tail.ids

    def learn_from_leaderboard(self) -> None:
        self.scheduler.learn()

    def break_expired_leases(self) -> None:
        self.leases.break_expired({r.entry.id for r in self.table.running()}, self.recorded_ids)

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self)

    def heartbeat(self, stopped: bool = False) -> None:
        for r in self.leases.renew(self.table.running()):
            # Presumed dead by another node (a stall longer than the lease): the idea was
            # re-queued, so this copy stops now; its result is discarded when it is reaped.
            r.kill("lease lost", grace=1.0)
        publish(self, stopped)

    def shutdown(self) -> None:
        self._announce_stop()
        for r in self.table.running():
            self.release(r, "shutdown")
        if self.agent_host is not None:
            try:
                self.agent_host.stop()
            except Exception:
                log.exception("agent host did not stop cleanly")
        if self.pool is not None:
            self.pool.stop_all()
        self.heartbeat(stopped=True)
        self.transitions.emit(EventKind.NODE_STOPPED, node=self.node, counters=dict(self.counters.__dict__))
