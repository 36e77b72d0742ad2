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


def test_lease_scans_skip_recorded_runs_except_on_full_scans(tmp_path, default_space, monkeypatch):
    """Finished runs are not looked into on every scan; a claim a crashed node left on a run it
    had recorded is still released, by the next full scan."""
    from orze.daemon import leases as leases_mod
    from orze.store.leaderboard import append_row

    layout = Layout.at(tmp_path).ensure()
    project = ProjectConfig()
    project.scheduler.lease_s = 30
    left = claimed_run(layout, "20260101T000000-000000000000003", "crashed-node", age_s=300)
    (left / "result.json").write_text("{}")
    (left / "recorded").write_text("")
    append_row(layout, {"id": left.name, "status": "done"})
    d = Daemon(layout, project, default_space, node="me", slots=[])
    d.learn_from_leaderboard()
    assert left.name in d.recorded_ids
    looked = []
    real = leases_mod.claimed_dirs
    monkeypatch.setattr(leases_mod, "claimed_dirs", lambda lay, skip=None: looked.append(skip) or real(lay, skip))
    d.break_expired_leases()                      # scan 1: full
    assert looked[-1] is None and not (left / "claim").exists() and queue.depth(layout) == 0
    claims.claim(left, Claim(node="crashed-node", slot=0, pid=1, attempt=1, claimed_at=0.0))
    t = time.time() - 300
    os.utime(left / "heartbeat", (t, t))
    for _ in range(leases_mod.FULL_SCAN_EVERY - 1):  # scans 2..10 skip it
        d.break_expired_leases()
        assert looked[-1] == {left.name} and (left / "claim").exists()
    d.break_expired_leases()                      # scan 11: full again
    assert looked[-1] is None and not (left / "claim").exists()
    assert queue.depth(layout) == 0               # recorded: released, never re-queued


def test_result_written_but_row_missing_is_recorded_once_on_recovery(tmp_path, default_space):
    """The owner died after writing result.json and before appending its row: the node that breaks
    its lease appends the row, exactly once, and the owner's own late append is refused."""
    from orze.store.leaderboard import read_rows
    from orze.store.transitions import Transitions

    layout = Layout.at(tmp_path).ensure()
    project = ProjectConfig()
    project.scheduler.lease_s = 30
    run = claimed_run(layout, "20260101T000000-000000000000004", "dead-node", age_s=300)
    row = {"id": run.name, "status": "done", "metric": 0.7, "config": {"seed": 1}}
    (run / "result.json").write_text(json.dumps(row))
    d = Daemon(layout, project, default_space, node="me", slots=[])
    d.break_expired_leases()
    assert [r["id"] for r in read_rows(layout.leaderboard)] == [run.name]
    assert not (run / "claim").exists() and (run / "recorded").exists() and queue.depth(layout) == 0
    d.break_expired_leases()
    assert not Transitions(layout, "dead-node").record(row)      # the late owner: refused
    assert len(read_rows(layout.leaderboard)) == 1


def test_requeue_keeps_the_entry_in_exactly_one_place(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    entry = Entry(id="20260101T000000-000000000000005", fingerprint="f5", config={"seed": 5}, meta={},
                  admitted_at=1.0)
    queue.put(layout, entry)
    taken = queue.take(layout, queue.list_names(layout)[0])
    run_dir = layout.run_dir(taken.id)
    assert (run_dir / "idea.json").exists() and queue.depth(layout) == 0
    taken.history.append({"attempt": 1})
    queue.requeue(layout, taken)                       # moved, not copied
    assert not (run_dir / "idea.json").exists() and queue.depth(layout) == 1
    again = queue.take(layout, queue.list_names(layout)[0])   # another node takes it at once
    assert again.history == [{"attempt": 1}] and (run_dir / "idea.json").exists()


def test_owner_dead_between_claim_and_take_leaves_the_idea_queued(tmp_path, default_space):
    """A node that died after claiming a run but before taking its queue entry: when its lease
    expires the claim is released and the idea, still queued, runs normally."""
    layout = Layout.at(tmp_path).ensure()
    project = ProjectConfig()
    project.scheduler.lease_s = 30
    entry = Entry(id="20260101T000000-000000000000006", fingerprint="f6", config={"seed": 6}, meta={},
                  admitted_at=1.0)
    queue.put(layout, entry)
    run_dir = layout.run_dir(entry.id)
    run_dir.mkdir(parents=True)
    claims.claim(run_dir, Claim(node="dead", slot=0, pid=999999, attempt=1, claimed_at=0.0, host="elsewhere"))
    t = time.time() - 300
    os.utime(run_dir / "heartbeat", (t, t))
    d = Daemon(layout, project, default_space, node="me", slots=[])
    d.break_expired_leases()
    assert not (run_dir / "claim").exists() and queue.depth(layout) == 1
    assert queue.take(layout, queue.list_names(layout)[0]).id == entry.id
