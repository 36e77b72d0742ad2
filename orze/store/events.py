"""runs/events.jsonl: the audit log. Every state change (node started/stopping/stopped, admitted,
rejected, duplicate, started, finished, requeued, released, lease lost or broken, recorded on
recovery) is one JSON line, appended in one write under the events lock, so a campaign's history
can be replayed and counted. Event kinds are `orze.vocab.EventKind`; run-state transitions emit
theirs through orze.store.transitions, one event per transition."""

from __future__ import annotations

import json
import time
from typing import Any

from orze.layout import Layout
from orze.store.atomic import append_line
from orze.store.lock import layout_lock
from orze.vocab import EventKind


def make_event(event: EventKind | str, **fields: Any) -> dict[str, Any]:
    return {"t": time.time(), "event": str(event), **fields}


def emit(layout: Layout, event: EventKind | str, **fields: Any) -> dict[str, Any]:
    """Append one event; returns the record as written. OSError (a full disk, a lock whose holder
    outlived the wait) if it could not be: `write_events` retries a kept record later."""
    record = make_event(event, **fields)
    write_events(layout, [record])
    return record


def write_events(layout: Layout, records: list[dict[str, Any]]) -> None:
    """Append `records` in one write (all or none) under the events lock."""
    data = b"".join((json.dumps(r, sort_keys=True, default=str) + "\n").encode() for r in records)
    with layout_lock(layout, layout.events_lock):
        append_line(layout.events, data, durable=False)  # an audit log: the leaderboard is the record


def read_events(layout: Layout) -> list[dict[str, Any]]:
    from orze.store.leaderboard import iter_jsonl

    return [e for e in iter_jsonl(layout.events) if "event" in e]
