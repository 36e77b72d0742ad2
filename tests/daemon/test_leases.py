"""A dead node's expired claim is broken and its idea re-queued by a live node; a fresh one is not."""

import json
import os
import time

from orze.config import ProjectConfig
from orze.daemon.node import Daemon
from orze.layout import Layout
from orze.store import claims, queue
from orze.store.claims import Claim
from orze.store.queue import Entry


def claimed_run(layout, run_id, node, age_s):
    entry = Entry(id=run_id, fingerprint="f" + run_id, config={"seed": 1}, meta={}, admitted_at=1.0)
    queue.put(layout, entry)
    taken = queue.take(layout, queue.list_names(layout)[0])
    run_dir = layout.run_dir(taken.id)
    claims.claim(run_dir, Claim(node=node, slot=0, pid=999999, attempt=1, claimed_at=0.0, host="elsewhere"))
    t = time.time() - age_s
    os.utime(run_dir / "heartbeat", (t, t))
    return run_dir


def test_expired_lease_is_requeued_fresh_one_is_kept(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    project = ProjectConfig()
    project.scheduler.lease_s = 30
    stale = claimed_run(layout, "20260101T000000-000000000000001", "dead-node", age_s=300)
    fresh = claimed_run(layout, "20260101T000000-000000000000002", "live-node", age_s=1)
    d = Daemon(layout, project, default_space, node="me", slots=[])
    d.break_expired_leases()
    assert queue.depth(layout) == 1
    back = queue.read(layout, queue.list_names(layout)[0])
    assert back.id == stale.name and "expired" in back.history[-1]["released"]
    assert not (stale / "claim").exists() and (fresh / "claim").exists()
    d.break_expired_leases()  # idempotent: nothing re-queued twice
    assert queue.depth(layout) == 1
