"""Every move of a run between states, in one place, each in its proven order with one event.

Where an idea is, in each state (an idea is always in exactly one of these places):

    queued     runs/queue/<rank>-<ns>-<id>.json
    claimed    runs/exp/<id>/claim (a lease) and, once taken, runs/exp/<id>/idea.json
    recorded   runs/exp/<id>/result.json, its leaderboard row, runs/exp/<id>/recorded

The transitions, and the one event each emits (orze.vocab.EventKind):

    admit          fingerprint created exclusively, then the queue entry      ADMITTED
    reject         a rejection record in runs/rejected/                       REJECTED | DUPLICATE
    start          claim, then take (queue entry → idea.json), prepare the    STARTED, or RELEASED
                   run directory, launch, worker.pid                          if the launch failed
    requeue        a failed attempt goes back (healed: its new fingerprint    REQUEUED
                   created first); claim released, idea.json renamed back
    release        the same, the entry unchanged (shutdown, lost worker)      RELEASED
    record         result.json, the row appended once, `recorded`, claim      FINISHED
                   released
    discard        this node's lease was broken while it ran: nothing moves,  LEASE_LOST
                   the idea is another node's now
    recover        a dead owner's claim broken by one rename, then: its       LEASE_BROKEN | RECORDED_ON_
                   result recorded, or its idea re-queued, or (died between   RECOVERY | RELEASED |
                   claim and take) the claim simply released                  REQUEUE_FAILED

Why these orders: claim before take, so a node dying between the two leaves a claim on a still
queued idea (released when its lease expires), never an idea in no place; requeue renames
idea.json back into the queue, never copies, so a node that takes the new entry at once never has
its idea.json deleted; result.json before the row, and the row only if its id is absent (checked
under the leaderboard lock), so recovery can append a missing row and never a second one.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import yaml

from orze.layout import (
    RUN_CLAIM,
    RUN_CONFIG,
    RUN_EFFECTIVE,
    RUN_FAILURE,
    RUN_IDEA,
    RUN_JUDGED,
    RUN_METRICS,
    RUN_PROGRESS,
    RUN_PRUNE,
    RUN_RECORDED,
    RUN_RESULT,
    RUN_WORKER_PID,
    Layout,
)
from orze.store import claims, queue
from orze.store.atomic import atomic_write_json, atomic_write_text, create_exclusive, read_json_or_none
from orze.store.claims import Claim
from orze.store.events import make_event, write_events
from orze.store.leaderboard import Tail, append_once
from orze.store.lease import Lease, fs_now, new_token
from orze.store.permissions import private_mode
from orze.vocab import EventKind

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class Launched(Protocol):
    pid: int
    mode: str


# An unreadable fingerprint older than this had a creator that died mid-write (only possible where
# create_exclusive falls back to O_EXCL, or for files from older versions).
FINGERPRINT_GRACE_S = 60.0


class AdmissionDeferred(OSError):
    """An idea cannot be decided now (a fingerprint being written); its file is retried later."""


def _same_origin(existing: dict[str, Any], marker: dict[str, Any]) -> bool:
    return existing.get("source") == marker.get("source") and existing.get("index") == marker.get("index") \
        and marker.get("source") is not None


@dataclass
class Admitted:
    id: str
    existing: dict[str, Any] | None = None   # the fingerprint's holder, when it was not created


class Transitions:
    """The run-state transitions of one node (`node` names it in every event)."""

    def __init__(self, layout: Layout, node: str, tail: Tail | None = None,
                 listeners: list[Listener] | None = None):
        self.layout, self.node = layout, node
        self.tail = tail if tail is not None else Tail(layout.leaderboard)
        self.listeners: list[Listener] = list(listeners or [])
        self.unsent: list[dict[str, Any]] = []

    def emit(self, kind: EventKind, **fields: Any) -> dict[str, Any]:
        """Record one event. The state change it reports has already happened, so a failed append
        (a full disk) never undoes or raises: the record is kept in order and written with the next
        event that can be (`flush_events`), so none goes missing from runs/events.jsonl."""
        record = make_event(kind, **fields)
        self.unsent.append(record)
        self.flush_events()
        for listener in self.listeners:
            listener(record)
        return record

    def flush_events(self) -> bool:
        """Write the events kept since a failed append; True if none is left."""
        if not self.unsent:
            return True
        try:
            write_events(self.layout, self.unsent)
        except OSError as e:
            if len(self.unsent) == 1 or len(self.unsent) % 100 == 0:
                log.warning("events not written yet (%d kept in memory): %s", len(self.unsent), e)
            return False
        self.unsent = []
        return True

    # --- admission ---------------------------------------------------------------------------
    def admit(self, entry: queue.Entry, marker: dict[str, Any]) -> Admitted:
        """Create the fingerprint, then queue the entry. If the fingerprint exists, its holder's
        marker is returned and the caller decides (a duplicate, or its own idea half-admitted
        before a crash: then this makes sure the idea is somewhere, see `_own_half_admitted`).

        An unreadable fingerprint (a legacy empty file, or one left by a filesystem without hard
        links) is judged by its age: older than FINGERPRINT_GRACE_S its creator is gone, so it is
        broken and created again; younger, the idea waits (AdmissionDeferred)."""
        fp_path = self.layout.fingerprints / entry.fingerprint
        for _ in range(2):
            if create_exclusive(fp_path, json.dumps(marker).encode(), self.layout.claim_method):
                queue.put(self.layout, entry)
                self.emit(EventKind.ADMITTED, id=entry.id, fingerprint=entry.fingerprint,
                          source=entry.source_file, priority=entry.priority, node=self.node,
                          near_duplicate_of=entry.near_duplicate_of)
                return Admitted(entry.id)
            existing = read_json_or_none(fp_path)
            if existing is not None:
                if _same_origin(existing, marker):
                    self._own_half_admitted(entry, existing)
                return Admitted(entry.id, existing=existing)
            lease = Lease(fp_path, self.layout.claim_method)
            if not lease.break_if_expired(FINGERPRINT_GRACE_S) and fp_path.exists():
                raise AdmissionDeferred(f"{fp_path}: unreadable fingerprint younger than "
                                        f"{FINGERPRINT_GRACE_S:g}s (its creator may still be writing)")
            log.warning("%s: broke an unreadable fingerprint left by a dead creator", fp_path)
        raise AdmissionDeferred(f"{fp_path}: could not be created")

    def _own_half_admitted(self, entry: queue.Entry, existing: dict[str, Any]) -> None:
        """This idea's own fingerprint, from an admission that a kill interrupted: the fingerprint
        exists, but was the queue entry written? If the run is nowhere (not queued, no run
        directory, not on the leaderboard), queue it now under the fingerprint's id, so a kill
        between the two writes never loses the idea."""
        run_id = str(existing.get("id") or "")
        if not run_id or self.run_is_placed(run_id):
            return
        entry.id = run_id
        if isinstance(existing.get("admitted_at"), (int, float)):
            entry.admitted_at = float(existing["admitted_at"])
        queue.put(self.layout, entry)
        self.emit(EventKind.ADMITTED, id=entry.id, fingerprint=entry.fingerprint, source=entry.source_file,
                  priority=entry.priority, node=self.node, near_duplicate_of=entry.near_duplicate_of,
                  repaired="queued after a kill between its fingerprint and its queue entry")

    def run_is_placed(self, run_id: str) -> bool:
        """Whether run `run_id` is anywhere an idea can be: queued, in its run directory (claimed,
        taken or finished), or on the leaderboard."""
        if self.layout.run_dir(run_id).exists():
            return True
        if any(queue.sort_key(n)[2] == f"{run_id}.json" for n in queue.list_names(self.layout)):
            return True
        self.tail.poll()
        return run_id in self.tail.ids

    def reject(self, record: dict[str, Any], name: str | None = None) -> None:
        """Keep a rejected idea with its reasons (never dropped); `name`: its record's file name."""
        name = name or f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(6)}.json"
        # What an agent gave, verbatim: owner-only (or the storage group's), whatever the umask.
        atomic_write_json(self.layout.rejected / name, record, mode=private_mode(self.layout.group))
        dup = record.get("duplicate_of")
        self.emit(EventKind.DUPLICATE if dup else EventKind.REJECTED, source=record.get("source"),
                  index=record.get("index"), errors=list(record.get("errors") or [])[:5], duplicate_of=dup,
                  node=self.node)

    # --- start -------------------------------------------------------------------------------
    def start(self, name: str, slot: int, attempt: int, launch: Callable[[queue.Entry, Path, float], Launched],
              **fields: Any) -> tuple[queue.Entry, Launched] | None:
        """Claim the queue entry `name` for `slot` and `attempt`, take it, prepare its run directory
        and launch it (`launch(entry, run_dir, claimed_at)`). None if another node holds it (nothing
        moved) or the launch failed (released, back in the queue). `fields` join the STARTED event."""
        run_id = queue.sort_key(name)[2][: -len(".json")]
        run_dir = self.layout.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        claimed_at = time.time()
        claim = Claim(node=self.node, slot=slot, pid=os.getpid(), attempt=attempt, claimed_at=claimed_at,
                      host=socket.gethostname(), token=new_token())
        if not claims.claim(run_dir, claim, self.layout.claim_method):
            return None  # another node is taking it (or a dead node's claim awaits its lease)
        entry = queue.take(self.layout, name)
        if entry is None:
            claims.release(run_dir)
            return None
        for stale in (RUN_METRICS, RUN_EFFECTIVE, RUN_FAILURE, RUN_RESULT, RUN_PROGRESS, RUN_PRUNE, RUN_JUDGED):
            _unlink(run_dir / stale)
        try:
            atomic_write_text(run_dir / RUN_CONFIG, yaml.safe_dump(entry.config, sort_keys=True))
            handle = launch(entry, run_dir, claimed_at)
        except OSError as e:
            self.release(entry, f"cannot start worker: {e}")
            return None
        try:
            atomic_write_text(run_dir / RUN_WORKER_PID, f"{handle.pid}\n")
        except OSError:
            pass  # only used to kill an orphan after a restart; the run itself is fine
        self.emit(EventKind.STARTED, id=entry.id, node=self.node, slot=slot, attempt=attempt, pid=handle.pid,
                  mode=str(handle.mode), config=_summary(entry.config), **fields)
        return entry, handle

    # --- back to the queue -------------------------------------------------------------------
    def requeue(self, entry: queue.Entry, note: dict[str, Any],
                healed: tuple[dict[str, Any], str] | None = None) -> bool:
        """A failed attempt goes back for another. With `healed` (config, fingerprint), the healed
        configuration's fingerprint is created first; False if it exists (nothing moved)."""
        if healed is not None:
            config, fp = healed
            marker = json.dumps({"id": entry.id, "source": "heal", "config": config}).encode()
            if not create_exclusive(self.layout.fingerprints / fp, marker, self.layout.claim_method):
                return False
            entry.config, entry.fingerprint = config, fp
        entry.attempts = note["attempt"]
        entry.history.append(note)
        self._back_to_queue(entry)
        self.emit(EventKind.REQUEUED, id=entry.id, node=self.node, attempt=note["attempt"],
                  failure=note.get("failure"), heal=note.get("heal"))
        return True

    def release(self, entry: queue.Entry, reason: str) -> None:
        """A claimed idea goes back unchanged, no attempt used."""
        self._back_to_queue(entry)
        self.emit(EventKind.RELEASED, id=entry.id, node=self.node, reason=reason)

    def _back_to_queue(self, entry: queue.Entry) -> None:
        # The idea first, then the claim: a kill between the two leaves a claim on a queued idea
        # (its lease expires), never an idea.json that no claim covers and no queue lists.
        queue.requeue(self.layout, entry)
        claims.release(self.layout.run_dir(entry.id))

    def adopt_orphan(self, run_dir: Path, min_age_s: float) -> bool:
        """Re-queue an idea.json that no claim covers and no result finished (left by a version
        that released the claim before re-queueing, or by hand), once older than `min_age_s`. Done
        under a claim of this node's, so no other node's recovery can move it at the same time."""
        idea = run_dir / RUN_IDEA
        try:
            age = fs_now(run_dir) - idea.stat().st_mtime
        except FileNotFoundError:
            return False
        if age < min_age_s or (run_dir / RUN_CLAIM).exists() or (run_dir / RUN_RESULT).exists():
            return False
        claim = Claim(node=self.node, slot=-1, pid=os.getpid(), attempt=0, claimed_at=time.time(),
                      host=socket.gethostname(), token=new_token())
        if not claims.claim(run_dir, claim, self.layout.claim_method):
            return False
        entry = _entry_or_none(read_json_or_none(idea))
        if entry is None:
            claims.release(run_dir)
            return False
        entry.history.append({"released": "adopted: idea.json without a claim", "at": time.time()})
        self._back_to_queue(entry)
        self.emit(EventKind.LEASE_BROKEN, id=entry.id, node=self.node, reason="idea.json without a claim")
        return True

    # --- the end of an attempt ---------------------------------------------------------------
    def record(self, row: dict[str, Any], **fields: Any) -> bool:
        """Record a finished attempt; False if its row was on the leaderboard already."""
        run_dir = self.layout.run_dir(row["id"])
        appended = self._write_result(row)
        claims.release(run_dir)
        error = row.get("error")
        self.emit(EventKind.FINISHED, id=row["id"], status=str(row["status"]), metric=row.get("metric"),
                  metric_name=row.get("metric_name"), node=self.node, attempt=row.get("attempts"),
                  duration_s=row.get("duration_s"),
                  error=error.get("class") if isinstance(error, dict) else None,
                  message=(error.get("message") or "")[:300] if isinstance(error, dict) else None,
                  findings=(error.get("findings") or [])[:3] if isinstance(error, dict) else None,
                  **fields)
        return appended

    def _write_result(self, row: dict[str, Any]) -> bool:
        run_dir = self.layout.run_dir(row["id"])
        atomic_write_json(run_dir / RUN_RESULT, row)
        appended = append_once(self.layout, row, self.tail)
        create_exclusive(run_dir / RUN_RECORDED, f"{time.time()}\n".encode(), self.layout.claim_method)
        return appended

    def discard(self, run_id: str, reason: str) -> None:
        """This node was presumed dead and its lease broken: its copy's result is not recorded."""
        self.emit(EventKind.LEASE_LOST, id=run_id, node=self.node, reason=reason)

    def recover(self, run_dir: Path, reason: str) -> bool:
        """Take over a run whose owner is gone (expired lease, or this node restarted). True if this
        node broke the claim (another node may have done it first)."""
        if not claims.break_claim(run_dir):
            return False
        row = read_json_or_none(run_dir / RUN_RESULT)
        if (run_dir / RUN_RESULT).exists():
            # The attempt finished and its result.json was written; the owner may have died before
            # appending the row. Append it if it is missing (never twice), release.
            if row is not None and "id" in row and self._write_result(row):
                self.emit(EventKind.RECORDED_ON_RECOVERY, id=row["id"], node=self.node, reason=reason)
            claims.release(run_dir)
            return True
        idea = run_dir / RUN_IDEA
        entry = _entry_or_none(read_json_or_none(idea))
        if entry is None:
            if not idea.exists() and any(n.endswith(f"-{run_dir.name}.json") for n in queue.list_names(self.layout)):
                claims.release(run_dir)  # its owner died between claim and take: still queued
                self.emit(EventKind.RELEASED, id=run_dir.name, node=self.node, reason=f"{reason} (never taken)")
                return True
            why = f"{RUN_IDEA} missing" if not idea.exists() else f"{RUN_IDEA} unreadable"
            self.emit(EventKind.REQUEUE_FAILED, id=run_dir.name, node=self.node, reason=f"{reason}: {why}")
            return True
        entry.history.append({"released": reason, "at": time.time()})
        queue.requeue(self.layout, entry)
        claims.release(run_dir)
        self.emit(EventKind.LEASE_BROKEN, id=entry.id, node=self.node, reason=reason)
        return True


def _entry_or_none(data: dict[str, Any] | None) -> queue.Entry | None:
    try:
        return queue.Entry.from_json(data) if data is not None else None
    except TypeError:
        return None


def _summary(config: dict[str, Any]) -> str:
    b = config.get("backbone")
    b = "+".join(b) if isinstance(b, list) else b
    return f"{b}/{config.get('temporal_encoder')}/{config.get('pooling')}/{config.get('loss')}"


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
