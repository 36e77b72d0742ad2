"""Where each slot's time goes: busy (claim to recorded result), idle, and idle while work was
waiting in the queue (the time the scheduler, not the workload, left a slot empty).

Pure bookkeeping over timestamps the daemon passes in, so it is tested without processes. A slot's
utilisation is busy time over the time since the slot was created; `orze status` shows it per
slot and per node, and the node heartbeat carries the raw figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orze.vocab import EventKind


@dataclass
class SlotClock:
    created_at: float
    busy_s: float = 0.0
    jobs: int = 0
    busy_since: float | None = None
    free_since: float | None = None
    waiting_idle_s: float = 0.0
    work_waiting_since: float | None = None   # free while the queue had work, since when

    def __post_init__(self) -> None:
        if self.free_since is None:
            self.free_since = self.created_at

    def start(self, now: float) -> None:
        self._close_wait(now)
        self.busy_since, self.free_since = now, None
        self.jobs += 1

    def stop(self, now: float) -> None:
        if self.busy_since is not None:
            self.busy_s += max(0.0, now - self.busy_since)
        self.busy_since, self.free_since = None, now

    def work_waiting(self, now: float, waiting: bool) -> None:
        """Tell the clock whether work is queued; counts only while the slot is free."""
        if self.free_since is None:
            return
        if waiting and self.work_waiting_since is None:
            self.work_waiting_since = now
        elif not waiting:
            self._close_wait(now)

    def _close_wait(self, now: float) -> None:
        if self.work_waiting_since is not None:
            self.waiting_idle_s += max(0.0, now - self.work_waiting_since)
            self.work_waiting_since = None

    def snapshot(self, now: float) -> dict[str, float | int]:
        busy = self.busy_s + (now - self.busy_since if self.busy_since is not None else 0.0)
        waiting = self.waiting_idle_s + (now - self.work_waiting_since
                                         if self.work_waiting_since is not None else 0.0)
        elapsed = max(now - self.created_at, 1e-9)
        return {"busy_s": round(busy, 3), "idle_s": round(elapsed - busy, 3),
                "waiting_idle_s": round(waiting, 3), "jobs": self.jobs,
                "utilisation": busy / elapsed, "waiting_idle_fraction": waiting / elapsed}


def node_utilisation(snapshots: list[dict]) -> dict[str, float]:
    """Node totals from its slots' snapshots: busy share and idle-with-work share."""
    busy = sum(s["busy_s"] for s in snapshots)
    total = sum(s["busy_s"] + s["idle_s"] for s in snapshots) or 1e-9
    waiting = sum(s["waiting_idle_s"] for s in snapshots)
    return {"utilisation": busy / total, "waiting_idle_fraction": waiting / total}


@dataclass
class Counters:
    admitted: int = 0
    rejected: int = 0
    duplicates: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0
    misconfigured: int = 0
    pruned: int = 0
    retried: int = 0
    released: int = 0
    leases_broken: int = 0

    def count(self, event: dict[str, Any]) -> None:
        """Counters follow this node's events (a listener on its transitions)."""
        kind = event.get("event")
        name = str(event.get("status")) if kind == EventKind.FINISHED else _COUNTED.get(kind)
        if name in self.__dict__:
            setattr(self, name, getattr(self, name) + 1)


_COUNTED = {EventKind.ADMITTED: "admitted", EventKind.REJECTED: "rejected", EventKind.DUPLICATE: "duplicates",
            EventKind.STARTED: "started", EventKind.REQUEUED: "retried", EventKind.RELEASED: "released",
            EventKind.LEASE_BROKEN: "leases_broken"}
