"""The node daemon: one `orze run` per compute node, all sharing one research directory.

Each pass of the loop: admit inbox files, start queued ideas on free slots, reap finished
workers (verify, record, retry or heal), enforce timeouts and stalls, renew leases, break the
expired leases of dead nodes, keep agents alive, publish the node's heartbeat. Between passes the
daemon sleeps until a worker exits or reports (pidfd, or a warm worker's event
pipe) or the next scan is due, so a finished worker's slot
is refilled at once without busy-looping.

Stopping (SIGINT/SIGTERM, or the run bounds): no new work is claimed; running experiments get
`shutdown_grace_s` to finish, then are killed and released back to the queue. A second signal
releases them at once. Nothing claimed is ever left in limbo.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from orze.config import ProjectConfig
from orze.daemon.accounting import SlotClock, node_utilisation
from orze.daemon.admission import AdmissionReport, Admitter
from orze.daemon.heal import heal_patch
from orze.daemon.packing import MemoryLedger, PeakIndex
from orze.daemon.record import TRANSIENT, build_row, classify, judge_success, load_outputs, record, tail
from orze.daemon.slots import Slot, device_capacities, plan_node_slots
from orze.daemon.supervisor import ColdProcess, Running, builtin_command
from orze.daemon.warm import WarmPool
from orze.layout import RUN_CONFIG, RUN_FAILURE, RUN_IDEA, RUN_METRICS, RUN_RESULT, Layout
from orze.space import Space, check_idea, fingerprint
from orze.store import claims, queue
from orze.store.atomic import atomic_write_json, atomic_write_text
from orze.store.claims import Claim, create_exclusive
from orze.store.events import emit
from orze.store.leaderboard import Tail

import yaml


@dataclass
class RunBounds:
    max_experiments: int | None = None   # stop claiming after this many starts
    until_idle: bool = False             # exit when inbox, queue and slots are all empty
    once: bool = False                   # one admission + scheduling pass, then finish those runs


@dataclass
class Counters:
    admitted: int = 0
    rejected: int = 0
    duplicates: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0
    misconfigured: int = 0
    retried: int = 0
    released: int = 0
    leases_broken: int = 0


def default_node_id() -> str:
    return socket.gethostname().split(".")[0] or "node"


class Daemon:
    def __init__(self, layout: Layout, project: ProjectConfig, space: Space, node: str | None = None,
                 bounds: RunBounds | None = None, slots: list[Slot] | None = None,
                 on_event: Callable[[str], None] | None = None, agent_host: Any = None):
        self.layout = layout.ensure()
        self.project, self.space = project, space
        self.sched = project.scheduler
        self.node = node or default_node_id()
        self.bounds = bounds or RunBounds()
        self.slots = slots if slots is not None else plan_node_slots(project)
        self.slot_by_index = {s.index: s for s in self.slots}
        self.mode = project.worker.resolved_mode
        self.on_event = on_event or (lambda msg: None)
        self.pool = WarmPool(self.slots, project.worker, self._worker_env(), layout.node_dir(self.node),
                             layout.root, on_event=self.on_event) if self.mode == "warm" else None
        self.ledger = MemoryLedger(device_capacities(self.slots, self.sched))
        self.peaks = PeakIndex()
        self._leaderboard_tail = Tail(layout.leaderboard)
        self.queue_view = queue.View(layout, min_age_s=self.sched.poll_s)
        self.admitter = Admitter(layout, space, project.admission, self.node, self.sched.claim_method)
        self.running: dict[int, Running] = {}
        self.counters = Counters()
        self.started_at = time.time()
        self.stopping = False
        self.signals = 0
        self.stop_deadline: float | None = None
        self.estimates: dict[int, tuple[float, str]] = {}
        self._memory_blocked = False
        self._lease_scans = 0
        self.passes = 0   # loop passes: event-driven, so about one per event or scan, never a spin
        self.agent_host = agent_host
        self._next_admit = 0.0
        self._next_beat = 0.0
        self._next_reap = 0.0
        self.clocks = {s.index: SlotClock(self.started_at) for s in self.slots}
        self.recent: list[dict[str, Any]] = []

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ORZE_ROOT"] = str(self.layout.root)
        return env

    # --- signals ----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def handler(signum, frame):
            self.signals += 1
            self.request_stop(immediate=self.signals > 1, reason=signal.Signals(signum).name)
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def request_stop(self, immediate: bool = False, reason: str = "stop") -> None:
        if not self.stopping:
            self.on_event(f"stopping ({reason}): no new work; running experiments get "
                          f"{self.sched.shutdown_grace_s:g}s to finish, then are released")
        self.stopping = True
        grace = 0.0 if immediate else self.sched.shutdown_grace_s
        deadline = time.monotonic() + grace
        self.stop_deadline = deadline if self.stop_deadline is None else min(self.stop_deadline, deadline)

    # --- main loop --------------------------------------------------------------------------
    def run(self) -> Counters:
        self.recover_own_claims()
        self.learn_from_leaderboard()
        if self.pool is not None:
            # Workers import torch and initialise their devices before anything is claimed.
            self.pool.wait_ready(STARTUP_READY_S)
        emit(self.layout, "node_started", node=self.node, slots=[s.label for s in self.slots],
             mode=self.mode)
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
        self.reap()
        if self.stopping and self.stop_deadline is not None and now >= self.stop_deadline:
            for r in list(self.running.values()):
                self.release(r, "shutdown")
        if not self.stopping:
            if now >= self._next_admit or self.bounds.once:
                self.admit()
                self.learn_from_leaderboard()
                self._next_admit = now + self.sched.poll_s
            if self.pool is not None:
                self.pool.tend()
            self.fill_slots()
            if self.bounds.once:
                self.stopping = True  # one pass: finish what was started, claim nothing more
                self.stop_deadline = None
        self.supervise()
        if now >= self._next_beat:
            self.heartbeat()
            self._next_beat = now + min(self.sched.heartbeat_s, self.sched.lease_s / 4)
        if now >= self._next_reap:
            self.break_expired_leases()
            self._next_reap = now + self.sched.lease_s / 4
        if self.agent_host is not None and not self.stopping:
            try:
                self.agent_host.tick()
            except Exception as e:  # an agent problem must never take the daemon down
                self.on_event(f"agent host error: {e}")

    def finished(self) -> bool:
        if self.stopping or self.bounds.max_experiments is not None:
            now = time.time()
            for s in self._free_slots():
                self.clocks[s.index].work_waiting(now, self._work_waiting())
        if self.stopping:
            return not self.running
        b = self.bounds
        if b.max_experiments is not None and self.counters.started >= b.max_experiments:
            self.stopping = True
            self.stop_deadline = None
            return not self.running
        if b.until_idle and not self.running and not self._inbox_pending():
            self.queue_view.refresh(force=True)
            return len(self.queue_view) == 0
        return False

    def wait(self) -> None:
        """Sleep until a worker exits or the next scheduled scan, whichever comes first."""
        now = time.monotonic()
        horizon = min(self._next_admit, self._next_beat, self._next_reap)
        if self.stop_deadline is not None:
            horizon = min(horizon, self.stop_deadline)
        if self._free_slots() and not self.stopping and len(self.queue_view) > 0 and not self._memory_blocked:
            horizon = now  # work is waiting and a slot is free (and memory is not what holds it back)
        timeout = max(0.0, min(horizon - now, 1.0))
        if timeout == 0:
            return
        fds = [fd for fd in (r.fileno() for r in self.running.values()) if fd is not None]
        if self.pool is not None and not self.stopping:
            fds += self.pool.starting_fds()
        if fds:
            sel = selectors.DefaultSelector()
            for fd in fds:
                sel.register(fd, selectors.EVENT_READ)
            try:
                sel.select(timeout)
            except InterruptedError:
                pass
            finally:
                sel.close()
        elif self.running:
            time.sleep(min(timeout, 0.05))  # no pidfd or pipe to wait on: short polls
        else:
            time.sleep(timeout)

    # --- admission ---------------------------------------------------------------------------
    def _inbox_pending(self) -> bool:
        try:
            return any(not n.startswith(".") for n in os.listdir(self.layout.inbox)) or \
                any(self.layout.admitting_for(self.node).iterdir())
        except FileNotFoundError:
            return False

    def admit(self) -> AdmissionReport:
        try:
            report = self.admitter.admit_pending()
        except OSError as e:  # a full disk or a vanished mount: report, retry next pass
            self.on_event(f"admission error: {e}")
            return AdmissionReport()
        self.counters.admitted += len(report.admitted)
        self.counters.rejected += report.rejected
        self.counters.duplicates += report.duplicates
        if report.admitted:
            self.queue_view.invalidate()
        for m in report.messages:
            self.on_event(m)
        if report.admitted:
            self.on_event(f"admitted {len(report.admitted)} idea(s)")
        return report

    # --- scheduling --------------------------------------------------------------------------
    def _free_slots(self) -> list[Slot]:
        """Slots that can take an experiment now: nothing running, and a ready worker if warm."""
        return [s for s in self.slots if s.index not in self.running
                and (self.pool is None or self.pool.ready(s.index))]

    @property
    def recorded_ids(self) -> set[str]:
        """Ids of every run on the leaderboard (as of the last incremental read)."""
        return self._leaderboard_tail.ids

    def learn_from_leaderboard(self) -> None:
        """Read newly recorded rows (all nodes): their peak memory feeds the packing estimates,
        their ids let lease scans skip runs that are finished."""
        try:
            for row in self._leaderboard_tail.new_rows():
                self.peaks.add(row)
        except OSError as e:
            self.on_event(f"leaderboard read failed: {e}")

    def _slot_for(self, entry_config: dict[str, Any], free: list[Slot]) -> tuple[Slot, float, str] | None:
        """The first free slot whose device has room for this configuration, by estimate."""
        for slot in free:
            need, basis = self.peaks.estimate(entry_config, slot.device, self.sched.default_peak_mb)
            if self.ledger.fits(slot.device, need):
                return slot, need, basis
        return None

    def fill_slots(self) -> None:
        free = self._free_slots()
        now = time.time()
        self._memory_blocked = False
        if not free:
            return
        self.queue_view.refresh()
        for name in list(self.queue_view.names):
            if not free:
                break
            if self.bounds.max_experiments is not None and self.counters.started >= self.bounds.max_experiments:
                break
            peeked = queue.read(self.layout, name)
            if peeked is None:
                self.queue_view.discard(name)   # another node took it
                continue
            choice = self._slot_for(peeked.config, free)
            if choice is None:
                # The head does not fit anywhere yet: wait for a running experiment to end (which
                # frees memory) rather than run smaller ideas past it; priority order holds.
                self._memory_blocked = True
                break
            slot, need, basis = choice
            # Claim first, then take: a node that dies between the two leaves a claim (whose lease
            # expires and is released) on an idea still in the queue, never an idea in no place.
            run_dir = self.layout.run_dir(peeked.id)
            run_dir.mkdir(parents=True, exist_ok=True)
            claimed_at = time.time()
            c = Claim(node=self.node, slot=slot.index, pid=os.getpid(), attempt=peeked.attempts + 1,
                      claimed_at=claimed_at, host=socket.gethostname())
            self.queue_view.discard(name)
            if not claims.claim(run_dir, c, self.sched.claim_method):
                continue  # another node is taking it (or a dead node's claim awaits its lease)
            entry = queue.take(self.layout, name)
            if entry is None:
                claims.release(run_dir)
                continue
            free.remove(slot)
            if not self.start(entry, slot, claimed_at, (need, basis)):
                free.insert(0, slot)
        for slot in free:
            self.clocks[slot.index].work_waiting(now, self._work_waiting())

    def start(self, entry: queue.Entry, slot: Slot, claimed_at: float,
              estimate: tuple[float, str] | None = None) -> bool:
        """Start a claimed and taken idea on `slot`; on failure it goes back to the queue."""
        run_dir = self.layout.run_dir(entry.id)
        attempt = entry.attempts + 1
        for stale in (RUN_METRICS, "effective_config.json", RUN_FAILURE, RUN_RESULT):
            try:
                (run_dir / stale).unlink()
            except FileNotFoundError:
                pass
        atomic_write_text(run_dir / RUN_CONFIG, yaml.safe_dump(entry.config, sort_keys=True))
        warm = self.pool is not None and self.pool.usable(slot.index)
        try:
            if warm:
                handle = self.pool.start(slot.index, {"run_dir": str(run_dir), "root": str(self.layout.root),
                                                      "claimed_at": claimed_at, "run_id": entry.id})
            else:
                argv = (list(self.project.worker.command) + [str(run_dir)]) if self.project.worker.command \
                    else builtin_command(run_dir)
                env = self._worker_env()
                env.update(slot.env)
                env.update({"ORZE_RUN_ID": entry.id, "ORZE_CLAIMED_AT": repr(claimed_at)})
                handle = ColdProcess(argv, run_dir, env)
        except OSError as e:
            claims.release(run_dir)
            queue.requeue(self.layout, entry)
            self.queue_view.invalidate()
            self.on_event(f"{entry.id}: cannot start worker ({e}); re-queued")
            return False
        r = Running(entry, slot.index, run_dir, handle, claimed_at, attempt, mode="warm" if warm else "cold")
        try:
            atomic_write_text(run_dir / WORKER_PID, f"{r.pid}\n")
        except OSError:
            pass
        self.running[slot.index] = r
        need, basis = estimate or self.peaks.estimate(entry.config, slot.device, self.sched.default_peak_mb)
        self.ledger.reserve(slot.device, slot.index, need)
        self.estimates[slot.index] = (need, basis)
        self.clocks[slot.index].start(claimed_at)
        self.counters.started += 1
        emit(self.layout, "started", id=entry.id, node=self.node, slot=slot.index, attempt=attempt,
             mode=r.mode, pid=r.pid)
        self.on_event(f"slot {slot.label}: started {entry.id} ({_short(entry.config)})")
        return True

    def _slot_done(self, r: Running) -> None:
        """Bookkeeping when a slot's experiment ends, however it ends."""
        now = time.time()
        self.clocks[r.slot].stop(now)
        slot = self.slot_by_index.get(r.slot)
        if slot is not None:
            self.ledger.release(slot.device, r.slot)
        self.clocks[r.slot].work_waiting(now, self._work_waiting())

    def _work_waiting(self) -> bool:
        """Work is queued that this node would start now (not while stopping or at its bound)."""
        b = self.bounds
        at_bound = b.max_experiments is not None and self.counters.started >= b.max_experiments
        return not self.stopping and not at_bound and len(self.queue_view) > 0

    # --- supervision -------------------------------------------------------------------------
    def supervise(self) -> None:
        now = time.time()
        for r in list(self.running.values()):
            if r.poll() is not None:
                continue
            r.progressed()
            if now - r.started_at > self.sched.timeout_min * 60:
                r.kill("timeout")
            elif now - r.last_progress > self.sched.stall_min * 60:
                r.kill("stalled")

    def reap(self) -> None:
        for slot, r in list(self.running.items()):
            code = r.poll()
            if code is None:
                continue
            del self.running[slot]
            r.close()
            self._slot_done(r)
            if getattr(r.handle, "never_started", False):
                self._requeue_unstarted(r)
                continue
            try:
                self.finish(r, code)
            except OSError as e:  # a full disk: keep the run claimed; a restart recovers it
                self.on_event(f"{r.entry.id}: cannot record result ({e}); left claimed for recovery")

    def finish(self, r: Running, code: int) -> None:
        entry, run_dir = r.entry, r.run_dir
        own = claims.read_claim(run_dir)
        if own is None or own.node != self.node or own.attempt != r.attempt:
            # Our lease was broken while we ran (we were presumed dead): the idea is someone else's now.
            self.on_event(f"{entry.id}: lease lost while running; result discarded")
            return
        finished_at = time.time()
        metrics, effective = load_outputs(run_dir)
        verification = None
        if code == 0 and metrics is not None and r.stop_reason is None:
            status, error, verification = judge_success(self.layout, entry, metrics, effective,
                                                        require_effective=True)
        else:
            status, error = "failed", classify(run_dir, code, r.stop_reason)
            error["log_tail"] = tail(run_dir / "train.log", 20) or tail(run_dir / "worker.out", 20)
        if status == "failed" and self.retry(r, error):
            return
        row = build_row(entry, status, metrics, self.node, r.slot, r.started_at, finished_at, error,
                        r.attempt)
        need, basis = self.estimates.pop(r.slot, (None, None))
        row["worker_mode"] = r.mode
        row["verification"] = verification   # level and checks passed (issue 13)
        row["memory_estimate_mb"] = None if need is None else round(need, 1)
        row["memory_estimate_basis"] = basis
        record(self.layout, row, self._leaderboard_tail)
        self.peaks.add(row)  # learned at once, before this slot is refilled
        claims.release(run_dir)
        setattr(self.counters, status, getattr(self.counters, status) + 1)
        emit(self.layout, "finished", id=entry.id, status=status, metric=row["metric"],
             node=self.node, attempt=r.attempt,
             error=(error or {}).get("class") if isinstance(error, dict) else None)
        self.recent.append(row)
        self.recent = self.recent[-20:]
        if status == "done":
            self.on_event(f"{entry.id}: done val_ap={row['metric']:.4f} in {row['duration_s']:.1f}s")
        elif status == "misconfigured":
            self.on_event(f"{entry.id}: MISCONFIGURED: {'; '.join(error['findings'][:3])}")
        else:
            self.on_event(f"{entry.id}: failed ({error['class']}): {error.get('message', '')[:200]}")

    def retry(self, r: Running, error: dict[str, Any]) -> bool:
        """Re-queue a failed attempt (transient failure or a healable one) within max_attempts."""
        entry = r.entry
        if r.attempt >= self.sched.max_attempts or r.stop_reason == "shutdown":
            return False
        cls = error.get("class")
        note: dict[str, Any] = {"attempt": r.attempt, "failure": cls, "message": error.get("message")}
        if cls not in TRANSIENT:
            healed = heal_patch(self.space, entry.config, cls)
            if healed is None:
                return False
            patch, reason = healed
            check = check_idea(self.space, {**entry.config, **patch})
            if not check.ok:
                return False
            fp = fingerprint(check.config)
            marker = json.dumps({"id": entry.id, "source": "heal", "config": check.config}).encode()
            if not create_exclusive(self.layout.fingerprints / fp, marker, self.sched.claim_method):
                return False  # the healed configuration exists already
            note.update({"heal": reason, "patch": patch, "previous_fingerprint": entry.fingerprint})
            entry.config, entry.fingerprint = check.config, fp
        entry.attempts = r.attempt
        entry.history.append(note)
        claims.release(r.run_dir)
        queue.requeue(self.layout, entry)
        self.queue_view.invalidate()
        self.counters.retried += 1
        emit(self.layout, "requeued", id=entry.id, attempt=r.attempt, failure=cls, heal=note.get("heal"))
        self.on_event(f"{entry.id}: attempt {r.attempt} failed ({cls}); re-queued"
                      + (f" with heal: {note['heal']}" if "heal" in note else ""))
        return True

    def _requeue_unstarted(self, r: Running) -> None:
        """The slot's warm worker died before it could start this experiment: back to the queue
        as it was (no attempt used); the pool replaces the worker, or runs the slot cold."""
        claims.release(r.run_dir)
        queue.requeue(self.layout, r.entry)
        self.queue_view.invalidate()
        self.counters.released += 1
        emit(self.layout, "released", id=r.entry.id, node=self.node, reason="warm worker failed to start")
        self.on_event(f"{r.entry.id}: warm worker {r.pid} died before starting it; re-queued")

    def release(self, r: Running, reason: str) -> None:
        """Kill a running worker and put its idea back on the queue, unchanged."""
        r.kill(reason, grace=2.0)
        self.running.pop(r.slot, None)
        r.close()
        self._slot_done(r)
        claims.release(r.run_dir)
        queue.requeue(self.layout, r.entry)
        self.queue_view.invalidate()
        self.counters.released += 1
        emit(self.layout, "released", id=r.entry.id, node=self.node, reason=reason)
        self.on_event(f"{r.entry.id}: released back to the queue ({reason})")

    # --- recovery and leases -------------------------------------------------------------------
    def recover_own_claims(self) -> None:
        """After a restart: claims this node holds belong to workers that no longer exist."""
        for run_dir in _claimed_dirs(self.layout):
            c = claims.read_claim(run_dir)
            if c is None or c.node != self.node:
                continue
            if c.host == socket.gethostname() and c.pid != os.getpid() and _pid_alive(c.pid):
                continue  # another live daemon on this host uses the same node name
            if c.host == socket.gethostname():
                _kill_orphan_worker(run_dir)  # its worker outlived the daemon (own session)
            self._requeue_orphan(run_dir, "restart")

    def break_expired_leases(self) -> None:
        """Re-queue runs whose owner's lease expired. Runs already recorded are skipped (one
        directory listing instead of a stat per run: 100,000 finished runs are 100,000 metadata
        round trips on Lustre), except on every FULL_SCAN_EVERY-th scan, which also releases claims
        a crashed node left on runs it had recorded."""
        mine = {r.entry.id for r in self.running.values()}
        self._lease_scans += 1
        full = self._lease_scans % FULL_SCAN_EVERY == 1
        for run_dir in _claimed_dirs(self.layout, skip=None if full else self.recorded_ids):
            if run_dir.name in mine:
                continue
            c = claims.read_claim(run_dir)
            if c is None:
                continue
            if c.node == self.node and c.pid == os.getpid():
                continue
            if claims.lease_age(run_dir) > self.sched.lease_s:
                self._requeue_orphan(run_dir, f"lease of node {c.node} expired")

    def _requeue_orphan(self, run_dir: Path, reason: str) -> None:
        if not claims.break_claim(run_dir):
            return  # another node broke it first
        result = run_dir / RUN_RESULT
        if result.exists():
            # The attempt finished and its result.json was written; the owner may have died
            # before appending the row. Append it if it is missing (never twice), release.
            try:
                row = json.loads(result.read_text())
            except (OSError, ValueError):
                row = None
            if isinstance(row, dict) and "id" in row and record(self.layout, row, self._leaderboard_tail):
                emit(self.layout, "recorded_on_recovery", id=row["id"], node=self.node, reason=reason)
                self.on_event(f"{row['id']}: result recorded on recovery ({reason})")
            claims.release(run_dir)
            return
        try:
            entry = queue.Entry.from_json(json.loads((run_dir / RUN_IDEA).read_text()))
        except FileNotFoundError as e:
            if any(n.endswith(f"-{run_dir.name}.json") for n in queue.list_names(self.layout)):
                claims.release(run_dir)  # its owner died between claim and take: still queued
                return
            emit(self.layout, "requeue_failed", id=run_dir.name, node=self.node, reason=f"{reason}: {e}")
            self.on_event(f"{run_dir.name}: cannot re-queue, {RUN_IDEA} missing; left for a human")
            return
        except (OSError, ValueError, TypeError) as e:
            emit(self.layout, "requeue_failed", id=run_dir.name, node=self.node, reason=f"{reason}: {e}")
            self.on_event(f"{run_dir.name}: cannot re-queue, {RUN_IDEA} unreadable ({e}); left for "
                          f"`orze status` and a human")
            return
        entry.history.append({"released": reason, "at": time.time()})
        queue.requeue(self.layout, entry)
        self.queue_view.invalidate()
        claims.release(run_dir)
        self.counters.leases_broken += 1
        emit(self.layout, "lease_broken", id=entry.id, node=self.node, reason=reason)
        self.on_event(f"{entry.id}: re-queued ({reason})")

    # --- node heartbeat ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        slots = []
        for sl in self.slots:
            r = self.running.get(sl.index)
            entry = {"slot": sl.index, "device": sl.device, "run": r.entry.id if r else None,
                     "since": r.started_at if r else None, "mode": r.mode if r else self.mode,
                     "reserved_mb": self.ledger.reserved.get(sl.device, {}).get(sl.index),
                     **self.clocks[sl.index].snapshot(now)}
            if self.pool is not None:
                entry["worker"] = self.pool.describe(sl.index)
            slots.append(entry)
        totals = node_utilisation(slots)
        return {
            "node": self.node, "host": socket.gethostname(), "pid": os.getpid(), "mode": self.mode,
            "started_at": self.started_at, "updated_at": now, "stopping": self.stopping,
            "slots": slots, **totals,
            "memory": {d: {"capacity_mb": c, "reserved_mb": round(self.ledger.used(d), 1)}
                       for d, c in self.ledger.capacity_mb.items()},
            "queue_view": {"entries": len(self.queue_view), "list_s": round(self.queue_view.list_s, 4)},
            "counters": dict(self.counters.__dict__),
        }

    def heartbeat(self, stopped: bool = False) -> None:
        for r in list(self.running.values()):
            c = claims.read_claim(r.run_dir)
            if c is None or c.node != self.node or c.attempt != r.attempt:
                # Presumed dead by another node (a stall longer than the lease): the idea was
                # re-queued, so this copy must stop now; its result will be discarded.
                self.on_event(f"{r.entry.id}: lease lost; stopping this copy")
                r.kill("lease lost", grace=1.0)
                continue
            try:
                claims.beat(r.run_dir)  # renew each lease
            except OSError as e:
                self.on_event(f"{r.entry.id}: lease renewal failed: {e}")
        try:
            atomic_write_json(self.layout.nodes / f"{self.node}.json", {**self.snapshot(), "stopped": stopped})
        except OSError as e:
            self.on_event(f"node heartbeat failed: {e}")

    def shutdown(self) -> None:
        for r in list(self.running.values()):
            self.release(r, "shutdown")
        if self.agent_host is not None:
            try:
                self.agent_host.stop()
            except Exception as e:
                self.on_event(f"agent host stop error: {e}")
        if self.pool is not None:
            self.pool.stop_all()
        self.heartbeat(stopped=True)
        emit(self.layout, "node_stopped", node=self.node, counters=dict(self.counters.__dict__))


def _claimed_dirs(layout: Layout, skip: set[str] | None = None) -> list[Path]:
    """Run directories holding a claim, not looking into those named in `skip`."""
    out = []
    try:
        with os.scandir(layout.exp) as it:
            for d in it:
                if skip and d.name in skip:
                    continue
                if d.is_dir() and os.path.exists(os.path.join(d.path, "claim")):
                    out.append(Path(d.path))
    except FileNotFoundError:
        pass
    return out


WORKER_PID = "worker.pid"
FULL_SCAN_EVERY = 10      # lease scans between full scans (which also look into recorded runs)
STARTUP_READY_S = 300.0   # how long `orze run` waits for its warm workers before scheduling anyway


def _kill_orphan_worker(run_dir: Path) -> None:
    try:
        pid = int((run_dir / WORKER_PID).read_text().strip())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _short(config: dict[str, Any]) -> str:
    b = config.get("backbone")
    b = "+".join(b) if isinstance(b, list) else b
    return f"{b}/{config.get('temporal_encoder')}/{config.get('pooling')}/{config.get('loss')}"
