"""runs/queue/: admitted ideas waiting for a slot, one JSON file each.

File names sort in scheduling order: `<priority rank>-<admission time ns>-<id>.json`, so the
queue order is a directory listing (critical > high > medium > low, then first in, first out) and
needs no index that could drift. A daemon takes an entry by renaming it into the run directory:
rename is atomic on NFS and Lustre, so exactly one daemon wins each entry.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orze.layout import RUN_IDEA, Layout
from orze.space import PRIORITIES
from orze.store.atomic import atomic_write_json, fsync_dir, read_json_or_none


@dataclass
class Entry:
    id: str
    fingerprint: str
    config: dict[str, Any]
    meta: dict[str, Any]
    admitted_at: float
    attempts: int = 0
    source_file: str | None = None
    near_duplicate_of: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier attempts and heals

    @property
    def priority(self) -> str:
        return self.meta.get("priority", "medium")

    def filename(self) -> str:
        rank = PRIORITIES.index(self.priority)
        return f"{rank}-{int(self.admitted_at * 1e9):020d}-{self.id}.json"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Entry":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def sort_key(name: str) -> tuple[int, int, str]:
    """Scheduling order of a queue file name (pure; used by the listing and by tests)."""
    rank, ns, rest = name.split("-", 2)
    return int(rank), int(ns), rest


def put(layout: Layout, entry: Entry) -> Path:
    path = layout.queue / entry.filename()
    atomic_write_json(path, entry.to_json())
    return path


def list_names(layout: Layout) -> list[str]:
    try:
        names = [n for n in os.listdir(layout.queue) if n.endswith(".json") and not n.startswith(".")]
    except FileNotFoundError:
        return []
    return sorted(names, key=sort_key)


class View:
    """A node's cached listing of the queue, in scheduling order.

    Listing a directory of 100,000 entries takes a few hundred milliseconds on a local disk and
    more on Lustre, too slow to repeat each time a slot frees. The view lists at most every
    `max(min_age_s, 10 x the last listing's duration)` (so listing never takes more than about a
    tenth of the daemon's time), sooner after this node changed the queue itself (`invalidate`).
    Entries another node took meanwhile fail their `take` and are dropped; entries others added
    are seen at the next listing.
    """

    def __init__(self, layout: Layout, min_age_s: float = 1.0):
        self.layout, self.min_age_s = layout, min_age_s
        self.names: list[str] = []
        self.listed_at = float("-inf")
        self.list_s = 0.0
        self.dirty = True

    def refresh(self, now: float | None = None, force: bool = False) -> None:
        now = time.monotonic() if now is None else now
        floor = 10 * self.list_s
        age = now - self.listed_at
        if force or age >= max(self.min_age_s, floor) or (self.dirty and age >= floor):
            t0 = time.monotonic()
            self.names = list_names(self.layout)
            self.list_s = time.monotonic() - t0
            self.listed_at, self.dirty = now, False

    def invalidate(self) -> None:
        self.dirty = True

    def discard(self, name: str) -> None:
        try:
            self.names.remove(name)
        except ValueError:
            pass

    def __len__(self) -> int:
        return len(self.names)


def depth(layout: Layout) -> int:
    return len(list_names(layout))


def read(layout: Layout, name: str) -> Entry | None:
    data = read_json_or_none(layout.queue / name)
    try:
        return Entry.from_json(data) if data is not None else None
    except TypeError:
        return None


def take(layout: Layout, name: str) -> Entry | None:
    """Move a queue entry into its run directory; None if another daemon took it first."""
    run_id = sort_key(name)[2][: -len(".json")]
    run_dir = layout.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / RUN_IDEA
    try:
        os.rename(layout.queue / name, target)
    except FileNotFoundError:
        return None
    fsync_dir(layout.queue)
    data = read_json_or_none(target)
    try:
        # None: re-queued by a recovering node in between, it is someone else's again
        return Entry.from_json(data) if data is not None else None
    except TypeError:
        return None


def requeue(layout: Layout, entry: Entry, keep_time: bool = True) -> Path:
    """Put an entry back (released by shutdown, broken lease, or a retry).

    The mirror of `take`: the (possibly updated) entry is written over the run's idea.json
    atomically and then renamed into the queue, so at every instant it is in exactly one place.
    (Writing the queue file first and deleting idea.json after would delete the idea.json of a
    node that took the new queue entry in between, and lose the idea.)
    """
    if not keep_time:
        entry.admitted_at = time.time()
    run_dir = layout.run_dir(entry.id)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / RUN_IDEA, entry.to_json())
    path = layout.queue / entry.filename()
    os.rename(run_dir / RUN_IDEA, path)
    fsync_dir(layout.queue)
    return path
