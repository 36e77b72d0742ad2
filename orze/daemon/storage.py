"""Whether this node can write the shared directory: a full disk, a quota, a read-only or vanished
mount never kills the daemon.

The loop's parts report an OSError here (`failed`) instead of raising. While storage is failing
the node claims nothing new and admits nothing (work it starts could not be recorded), keeps
renewing its leases (by utime, which needs no free blocks), keeps supervising what runs, and says
so: an event, the node heartbeat's `storage` field, `orze status`. Every `probe_s` it writes a
probe file of PROBE_BYTES; the first probe that succeeds resumes the node by itself.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from orze.layout import Layout
from orze.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

PROBE_BYTES = 64 * 1024   # a write that needs real free blocks, not only an inode


@dataclass
class StorageHealth:
    layout: Layout
    node: str
    probe_s: float = 5.0
    error: str | None = None
    part: str | None = None
    since: float | None = None
    failures: int = 0
    _next_probe: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def failed(self, part: str, exc: OSError) -> bool:
        """Note a failure of `part`; True if storage was fine until now (the caller announces it)."""
        first = self.error is None
        self.failures += 1
        self.error, self.part = f"{type(exc).__name__}: {exc}"[:500], part
        if first:
            self.since = time.time()
            log.error("storage: %s failed (%s); no new work until the shared directory is writable "
                      "again (probing every %gs)", part, exc, self.probe_s)
        self._next_probe = time.monotonic() + self.probe_s
        return first

    def probe(self) -> bool:
        """While failing: try a real write when due; True if storage has just come back."""
        if self.ok or time.monotonic() < self._next_probe:
            return False
        self._next_probe = time.monotonic() + self.probe_s
        path = self.layout.nodes / f".probe-{self.node}"
        try:
            atomic_write_bytes(path, b"\0" * PROBE_BYTES)
            os.unlink(path)
        except OSError as e:
            log.debug("storage probe failed: %s", e)
            return False
        log.warning("storage: writable again after %.0fs; resuming", time.time() - (self.since or time.time()))
        self.error = self.part = self.since = None
        return True

    def snapshot(self) -> dict[str, Any]:
        return {"ok": self.ok, "error": self.error, "part": self.part, "since": self.since,
                "failures": self.failures}
