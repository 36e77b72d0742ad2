"""The node heartbeat, runs/nodes/<node>.json: what `orze status` and the live panel show of a
node (its slots, what runs where, utilisation, memory reservations, counters). Built from the
daemon's parts by `snapshot`; written atomically each heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from orze.daemon.accounting import node_utilisation
from orze.slurm.environment import heartbeat_fields as slurm_heartbeat_fields
from orze.store.atomic import atomic_write_json

log = logging.getLogger(__name__)


def publish(d, stopped: bool = False) -> None:
    """Write the heartbeat of Daemon `d`; a failure is logged, never raised (the next one retries)."""
    try:
        atomic_write_json(d.layout.node_heartbeat(d.node), {**snapshot(d), "stopped": stopped})
    except OSError as e:
        log.warning("node heartbeat not written: %s", e)


def snapshot(d) -> dict[str, Any]:
    """The heartbeat of a Daemon `d` (orze.daemon.node)."""
    now = time.time()
    slots = []
    ledger = d.table.ledger
    for st in d.table.states:
        r, sl = st.running, st.slot
        entry = {"slot": sl.index, "device": sl.device, "run": r.entry.id if r else None,
                 "since": r.started_at if r else None, "mode": str(r.mode) if r else d.mode,
                 "reserved_mb": ledger.reserved.get(sl.device, {}).get(sl.index),
                 **st.clock.snapshot(now)}
        if d.pool is not None:
            entry["worker"] = d.pool.describe(sl.index)
        slots.append(entry)
    view = d.scheduler.queue_view
    return {
        "node": d.node, "host": socket.gethostname(), "pid": os.getpid(), "mode": d.mode,
        "started_at": d.started_at, "updated_at": now, "stopping": d.stopping,
        "slots": slots, **node_utilisation(slots),
        "memory": {dev: {"capacity_mb": c, "reserved_mb": round(ledger.used(dev), 1)}
                   for dev, c in ledger.capacity_mb.items()},
        "queue_view": {"entries": len(view), "list_s": round(view.list_s, 4)},
        "counters": dict(d.counters.__dict__),
        "storage": d.storage.snapshot(),     # a full disk or a failing mount (orze/daemon/storage.py)
        "slurm": slurm_heartbeat_fields(),   # the Slurm job running this daemon, or None (orze/slurm)
    }
