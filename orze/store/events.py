"""runs/events.jsonl: the audit log. Every state change (admitted, rejected, claimed, started,
finished, failed, requeued, released, lease broken) is one JSON line, appended in one write under
the events lock, so a campaign's history can be replayed and counted."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from orze.layout import Layout
from orze.store.lock import FileLock


def emit(layout: Layout, event: str, **fields: Any) -> None:
    record = {"t": time.time(), "event": event, **fields}
    data = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    with FileLock(layout.runs / "events.lock"):
        fd = os.open(layout.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def read_events(layout: Layout) -> list[dict[str, Any]]:
    from orze.store.leaderboard import iter_jsonl

    return [e for e in iter_jsonl(layout.events) if "event" in e]
