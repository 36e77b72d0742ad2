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
from orze.daemon.leases import LeaseKeeper, Renewer, adopt_admissions
from orze.daemon.packing import MemoryLedger
from orze.daemon.pruner import COLD_POLL_S, Pruner
from orze.daemon.record import conclude
from orze.daemon.scheduling import Scheduler
from orze.daemon.slot_state import SlotState, SlotTable
from orze.daemon.slots import Slot, device_capacities, plan_node_slots
from orze.daemon.storage import StorageHealth
from orze.daemon.supervisor import Launcher, Running, overdue, wait_for
from orze.daemon.warm import WarmPool
from orze.layout import RUN_FAILURE, Layout
from orze.space import Space
from orze.store.atomic import read_json_or_none
from orze.store.transitions import AdmissionDeferred, Transitions
from orze.vocab import EventKind, FailureClass, WorkerMode
from orze.worker.fence import LEASE_ENV

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
        self.layout = project.bind(layout).ensure()
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
        env = {**os.environ, "ORZE_ROOT": str(self.layout.root), LEASE_ENV: repr(self.sched.lease_s)}
        self.pool = WarmPool(slots, project.worker, env, self.layout.node_dir(self.node), self.layout.root) \
            if self.mode == WorkerMode.WARM else None
        self.launcher = Launcher(self.layout, project.worker, self.pool, env)
        self.leases = LeaseKeeper(self.layout, self.node, self.transitions, self.sched.lease_s)
        self.admitter = Admitter(self.layout, space, project.admission, self.node, transitions=self.transitions)
        self.pruner = Pruner(self.layout, project, space, self.transitions.emit, self.node)  # docs/pruning.md
        self.agent_host = agent_host
        self.notifier = notifier  # orze.notify.Notifier: derives events from files, sends in the background
        self.storage = StorageHealth(self.layout, self.node, probe_s=max(self.sched.poll_s, 5.0))
        self.started_at = time.time()
        self.stopping, self.signals, self.stop_deadline = False, 0, None
        self._announce: tuple[str, float] | None = None   # a stop to record in the event log
        self.passes = 0   # loop passes: event-driven, so about one per event or scan, never a spin
        self.last_pass = time.monotonic()
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
        renewer = Renewer(self.leases, self.table.running, lambda: self.last_pass,
                          every_s=min(self.sched.heartbeat_s, self.sched.lease_s / 4)).start()
        try:
            while True:
                self.step()
                if self.finished():
                    break
                self.wait()
        finally:
            renewer.stop()
            self.shutdown()
        return self.counters

    def step(self) -> None:
        self.passes += 1
        now = self.last_pass = time.monotonic()
        self._announce_stop()
        self.transitions.flush_events()
        self.reap()
        if self.stopping and self.stop_deadline is not None and now >= self.stop_deadline:
            for r in self.table.running():
                self.release(r, "shutdown")
        if not self.storage.ok and self.storage.probe():
            self.transitions.emit(EventKind.STORAGE_RECOVERED, node=self.node,
                                  after_s=round(time.time() - (self.started_at if self.storage.since is None
                                                               else self.storage.since), 1))
        if not self.stopping and self.storage.ok:
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
            self._guarded("lease recovery", self.break_expired_leases)
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
        if not self.storage.ok:
            return False  # work may be stranded until the directory is writable again
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
        timeout = max(0.0, min(horizon - now, 1.0))
        if self.pool is None and not self.project.worker.command and self.pruner.judging():
            # the built-in worker run cold awaits verdicts and has no event pipe to wake us with
            timeout = min(timeout, COLD_POLL_S)
        wait_for(fds, timeout, busy=bool(self.table.running()))

    # --- admission and starts ----------------------------------------------------------------
    def admit(self) -> None:
        try:
            report = self.admitter.admit_pending()
        except AdmissionDeferred as e:  # an idea that cannot be decided yet: its file is retried
            log.info("admission deferred: %s", e)
            return
        except OSError as e:  # a full disk or a vanished mount: retried once storage is back
            self.storage_failed("admission", e)
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
        if not self.storage.ok:
            return False
        try:
            started = self.transitions.start(
                name, state.index, attempt, device=state.slot.device,
                launch=lambda entry, run_dir, at: self.launcher.launch(entry, run_dir, state.slot, at, attempt))
        except OSError as e:
            # Nothing is lost: the idea is still queued, or claimed by this node with its idea.json
            # in place, which lease recovery re-queues once the claim expires.
            self.storage_failed("claiming", e)
            self.scheduler.queue_view.invalidate()
            return False
        if started is None:
            self.scheduler.queue_view.invalidate()
            return False
        self.table.occupy(state, started[1], need, started[1].started_at)
        return True

    # --- running and finished experiments ----------------------------------------------------
    def supervise(self) -> None:
        now = time.monotonic()
        for r in self.table.running():
            if r.poll() is None and (why := overdue(r, now, self.sched.timeout_min * 60, self.sched.stall_min * 60)):
                r.kill(why)

    def reap(self) -> None:
        for state in self.table.states:
            r = state.running
            if r is None or (code := r.poll()) is None:
                continue
            r.close()
            self._guarded("recording", self._conclude, state, r, code)

    def _conclude(self, state: SlotState, r: Running, code: int) -> None:
        """What a finished worker leaves: released, discarded, recorded or re-queued."""
        estimate = self.table.vacate(state, self._work_waiting())
        if getattr(r.handle, "never_started", False):
            # The slot's warm worker died before it could start this experiment: back to the
            # queue as it was (no attempt used); the pool replaces the worker or runs cold.
            self.transitions.release(r.entry, f"warm worker {r.pid} died before starting it")
            self.scheduler.queue_view.invalidate()
            return
        if self.stopping and code < 0 and r.stop_reason is None:
            # Killed by a signal while we stop: a scheduler signalling the whole job (Slurm's
            # requeue or preemption), not the experiment failing. Back, no attempt used.
            self.transitions.release(r.entry, f"worker signalled ({-code}) while the node stops")
            self.scheduler.queue_view.invalidate()
            return
        if not self.leases.owns(r):
            self.transitions.discard(r.entry.id, "lease lost while running; result discarded")
            return
        if (read_json_or_none(r.run_dir / RUN_FAILURE) or {}).get("class") == FailureClass.FENCED:
            # The worker stopped itself while this node was frozen; the lease held after all:
            # the idea goes back as it was, no attempt used.
            self.transitions.release(r.entry, "its worker stopped itself: the lease had lapsed")
            self.scheduler.queue_view.invalidate()
            return
        # An OSError here (a full disk) leaves the run claimed, its idea.json and whatever
        # result.json was written in place: lease recovery records or re-queues it later.
        row = conclude(self.layout, self.project, self.transitions, self.space, r, code, estimate,
                       self.node)
        if row is None:
            self.scheduler.queue_view.invalidate()   # re-queued for another attempt
        else:
            self.scheduler.peaks.add(row)  # learned at once, before this slot is refilled

    def release(self, r: Running, reason: str) -> None:
        """Kill a running worker and put its idea back on the queue, unchanged (if the directory
        refuses the move, the claim stays for lease recovery to re-queue)."""
        r.kill(reason, grace=2.0)
        r.close()
        self.table.vacate(self.table.by_index[r.slot], self._work_waiting())
        self._guarded("releasing", self.transitions.release, r.entry, reason)
        self.scheduler.queue_view.invalidate()

    # --- storage -----------------------------------------------------------------------------
    def storage_failed(self, part: str, e: OSError) -> None:
        if self.storage.failed(part, e):
            self.transitions.emit(EventKind.STORAGE_FAILING, node=self.node, part=part, error=self.storage.error)

    def _guarded(self, part: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except AdmissionDeferred:
            raise
        except OSError as e:
            self.storage_failed(part, e)
            return None

    # --- leases and heartbeat ----------------------------------------------------------------
    @property
    def recorded_ids(self) -> set[str]:
        """Ids of every run on the leaderboard (as of the last incremental read)."""
        return self.transitions.tail.ids

    def learn_from_leaderboard(self) -> None:
        self.scheduler.learn()

    def break_expired_leases(self) -> None:
        self.leases.break_expired({r.entry.id for r in self.table.running()}, self.recorded_ids)
        adopt_admissions(self.layout, self.node, self.sched.lease_s)

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
