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
from orze.store.lock import FileLock
from orze.vocab import EventKind


def emit(layout: Layout, event: EventKind | str, **fields: Any) -> dict[str, Any]:
    """Append one event; returns the record as written."""
    record = {"t": time.time(), "event": str(event), **fields}
    data = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    with FileLock(layout.events_lock, method=layout.claim_method):
        append_line(layout.events, data, durable=False)  # an audit log: the leaderboard is the record
    return record


def read_events(layout: Layout) -> list[dict[str, Any]]:
    from orze.store.leaderboard import iter_jsonl

    return [e for e in iter_jsonl(layout.events) if "event" in e]
