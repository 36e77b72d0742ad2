"""Faults the shared filesystem does to the store (issue 14), each reproduced at its root: a kill
or a full disk mid-write, a stalled write landing late, empty files, a clock jump. Every test here
failed before its fix."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from orze.config import AdmissionConfig
from orze.daemon.admission import AdmissionReport, Admitter
from orze.daemon.leases import LeaseKeeper
from orze.daemon.supervisor import Running, overdue
from orze.layout import RUN_CLAIM, RUN_IDEA, Layout
from orze.store import leaderboard, queue
from orze.store.atomic import append_line, create_exclusive
from orze.store.inbox import submit_ideas
from orze.store.leaderboard import Tail, iter_rows, rebuild, row_line
from orze.store.transitions import Transitions
from orze.vocab import FailureClass

# These directories hold no feature store: the faults are the store's, not the ideas'.
NO_STORES = AdmissionConfig(near_duplicates="off", require_feature_store=False)


def _fail_writes(monkeypatch, after: int = 0):
    """os.write writes `after` bytes, then the disk is full."""
    real = os.write

    def write(fd, data):
        if after:
            real(fd, bytes(data[:after]))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("method", ["excl", "link"])
def test_exclusive_create_is_absent_or_complete_on_a_full_disk(tmp_path, monkeypatch, method):
    """Before: O_EXCL created the name, then the write failed: an empty claim/fingerprint that
    blocked its run forever. Now the content is published by link(2) only once written."""
    _fail_writes(monkeypatch, after=3)
    with pytest.raises(OSError):
        create_exclusive(tmp_path / "claim", b'{"node": "n1"}', method)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []    # neither the name nor a temp file
    assert create_exclusive(tmp_path / "claim", b'{"node": "n1"}', method)
    assert json.loads((tmp_path / "claim").read_text()) == {"node": "n1"}


def test_a_failed_append_leaves_no_half_record(tmp_path, monkeypatch):
    log = tmp_path / "leaderboard.jsonl"
    append_line(log, b'{"id":"a"}\n')
    _fail_writes(monkeypatch, after=5)
    with pytest.raises(OSError):
        append_line(log, b'{"id":"b","metric":0.5}\n')
    monkeypatch.undo()
    assert log.read_bytes() == b'{"id":"a"}\n'


def test_a_record_after_a_torn_fragment_is_read(tmp_path):
    """Before: a fragment without a newline (a killed writer, a short write) glued the next healthy
    row onto it, and both were skipped until `--rebuild`."""
    log = tmp_path / "leaderboard.jsonl"
    log.write_bytes(b'{"id":"a"}\n{"id":"b","met')
    append_line(log, b'{"id":"c"}\n')
    assert [r["id"] for r in iter_rows(log)] == ["a", "c"]
    tail = Tail(log)
    assert [r["id"] for r in tail.new_rows()] == ["a", "c"]


def test_a_stalled_write_landing_late_does_not_record_a_run_twice(tmp_path):
    """A node's append stalled past the lock and the lease; another node recorded the run; then
    the stalled write landed. No lock can fence a write already in the kernel: every reader keeps
    the first row per run, and `rebuild` drops the second."""
    layout = Layout.at(tmp_path).ensure()
    first = {"id": "r1", "status": "done", "metric": 0.7, "node": "B"}
    late = {"id": "r1", "status": "done", "metric": 0.6, "node": "A"}
    with open(layout.leaderboard, "ab") as f:
        f.write(row_line(first) + row_line({"id": "r2", "status": "done", "metric": 0.5}) + row_line(late))
    rows = list(iter_rows(layout.leaderboard))
    assert [(r["id"], r["node"] if r["id"] == "r1" else None) for r in rows] == [("r1", "B"), ("r2", None)]
    assert [r["id"] for r in Tail(layout.leaderboard).new_rows()] == ["r1", "r2"]
    assert [r["id"] for r in leaderboard.ranked(rows)] == ["r1", "r2"]
    rebuild(layout)
    assert layout.leaderboard.read_text().count('"id":"r1"') == 1


def test_rebuild_keeps_a_row_recorded_while_it_scans(tmp_path, monkeypatch):
    layout = Layout.at(tmp_path).ensure()
    real_glob = type(layout.exp).glob

    def glob_then_record(self, pattern):
        out = list(real_glob(self, pattern))
        # a node records a run after the scan listed the run directories
        leaderboard.append_row(layout, {"id": "late", "status": "done", "metric": 0.9, "finished_at": 5})
        return out
    monkeypatch.setattr(type(layout.exp), "glob", glob_then_record)
    assert rebuild(layout) == 1
    monkeypatch.undo()
    assert [r["id"] for r in iter_rows(layout.leaderboard)] == ["late"]


def test_a_kill_between_fingerprint_and_queue_entry_loses_no_idea(tmp_path, default_space, monkeypatch):
    """Before: after a restart the daemon saw its own fingerprint, assumed the idea queued, and a
    resubmission was refused as a duplicate of a run that never existed."""
    layout = Layout.at(tmp_path).ensure()
    submit_ideas(layout, [{"learning_rate": 0.0003}, {"learning_rate": 0.001}])
    real_put, calls = queue.put, []

    def killed_after_fingerprint(lay, entry):
        calls.append(entry.id)
        if len(calls) == 2:
            raise KeyboardInterrupt("SIGKILL stand-in: the process ends here")
        return real_put(lay, entry)
    monkeypatch.setattr(queue, "put", killed_after_fingerprint)
    with pytest.raises(KeyboardInterrupt):
        Admitter(layout, default_space, NO_STORES, "n1").admit_pending()
    monkeypatch.undo()
    assert queue.depth(layout) == 1 and len(list(layout.fingerprints.iterdir())) == 2

    report = Admitter(layout, default_space, NO_STORES, "n1").admit_pending()
    names = queue.list_names(layout)
    assert len(names) == 2, "the idea whose queue entry was never written is queued on restart"
    fp_ids = {json.loads(p.read_text())["id"] for p in layout.fingerprints.iterdir()}
    assert {queue.sort_key(n)[2][:-5] for n in names} == fp_ids
    assert report.duplicates == 0


def test_an_unreadable_fingerprint_is_broken_once_old_and_waited_for_while_young(tmp_path, default_space):
    from orze.space import check_idea, fingerprint

    layout = Layout.at(tmp_path).ensure()
    fp = fingerprint(check_idea(default_space, {"learning_rate": 0.0003}).config)
    (layout.fingerprints / fp).write_bytes(b"")     # a creator that died (older version, no links)
    adm = Admitter(layout, default_space, NO_STORES, "n1")
    submit_ideas(layout, [{"learning_rate": 0.0003}])
    with pytest.raises(OSError, match="younger than"):
        adm.admit_pending()                         # young: the file waits in the admitting area
    assert queue.depth(layout) == 0 and not list(layout.rejected.iterdir())
    old = time.time() - 3600
    os.utime(layout.fingerprints / fp, (old, old))
    report = adm.admit_pending()
    assert len(report.admitted) == 1 and report.duplicates == 0
    assert json.loads((layout.fingerprints / fp).read_text())["id"] == report.admitted[0]


def taken_by_hand(layout, space, t, claim: bytes | None = None):
    """One admitted idea moved into its run directory (idea.json), with `claim` written as its
    claim file when given: the states a killed or full-disk node leaves."""
    submit_ideas(layout, [{"learning_rate": 0.0003}])
    Admitter(layout, space, NO_STORES, "n1", t).admit_pending()
    name = queue.list_names(layout)[0]
    run_dir = layout.run_dir(queue.sort_key(name)[2][:-5])
    run_dir.mkdir(parents=True)
    if claim is not None:
        (run_dir / RUN_CLAIM).write_bytes(claim)
    os.rename(layout.queue / name, run_dir / RUN_IDEA)
    return run_dir


def test_an_empty_claim_is_broken_after_one_lease(tmp_path, default_space):
    """Before: an empty claim (a full disk between create and write) was never broken; the idea
    stayed claimed forever and `--until-idle` spun."""
    layout = Layout.at(tmp_path).ensure()
    t = Transitions(layout, "n2")
    run_dir = taken_by_hand(layout, default_space, t, claim=b"")   # empty: its creator was out of space
    keeper = LeaseKeeper(layout, "n2", t, lease_s=60)
    keeper.break_expired(set(), set())
    assert (run_dir / RUN_CLAIM).exists(), "a young unreadable claim is left to its holder"
    old = time.time() - 3600
    os.utime(run_dir / RUN_CLAIM, (old, old))
    keeper.break_expired(set(), set())
    assert not (run_dir / RUN_CLAIM).exists() and queue.depth(layout) == 1


def test_time_limits_run_on_the_monotonic_clock(tmp_path):
    """Before: a wall-clock jump forward failed healthy runs as timed out, for good."""
    r = Running(entry=None, slot=0, run_dir=tmp_path, handle=None, started_at=time.time() - 10 * 3600,
                attempt=1)
    assert overdue(r, time.monotonic(), timeout_s=3600, stall_s=900) is None
    r.started_mono -= 7200
    assert overdue(r, time.monotonic(), timeout_s=3600, stall_s=10**6) == FailureClass.TIMEOUT


def test_a_kill_while_releasing_leaves_the_idea_queued(tmp_path, default_space, monkeypatch):
    """Before: the claim was released before the idea went back, so a kill between the two left an
    idea.json that no claim covered and no queue listed: stuck for good (found by scripts/faults.py:
    1 of 1,000 ideas)."""
    from orze.store import claims as claims_mod

    layout = Layout.at(tmp_path).ensure()
    t = Transitions(layout, "n1")
    submit_ideas(layout, [{"learning_rate": 0.0003}])
    Admitter(layout, default_space, NO_STORES, "n1", t).admit_pending()
    name = queue.list_names(layout)[0]

    class Handle:
        pid, mode = 0, "cold"
    started = t.start(name, 0, 1, launch=lambda *a: Handle())
    assert started is not None

    def killed(run_dir):
        raise KeyboardInterrupt("SIGKILL stand-in")
    monkeypatch.setattr(claims_mod, "release", killed)
    with pytest.raises(KeyboardInterrupt):
        t.release(started[0], "shutdown")
    monkeypatch.undo()
    assert queue.depth(layout) == 1, "the idea is back in the queue; only a claim (which expires) remains"


def test_an_idea_json_without_a_claim_is_adopted_after_two_leases(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    t = Transitions(layout, "n1")
    run_dir = taken_by_hand(layout, default_space, t)   # no claim: what an older version left behind
    keeper = LeaseKeeper(layout, "n1", t, lease_s=60)
    keeper.break_expired(set(), set())                       # a full scan: too young to adopt
    assert queue.depth(layout) == 0
    old = time.time() - 3600
    os.utime(run_dir / RUN_IDEA, (old, old))
    keeper.scans = 0
    keeper.break_expired(set(), set())
    assert queue.depth(layout) == 1 and not (run_dir / RUN_CLAIM).exists()


def test_a_node_that_never_returns_loses_none_of_its_half_admitted_files(tmp_path, default_space):
    from orze.daemon.leases import ADOPT_MIN_S, adopt_admissions

    layout = Layout.at(tmp_path).ensure()
    submit_ideas(layout, [{"learning_rate": 0.0003}, {"learning_rate": 0.001}])
    dead = Admitter(layout, default_space, NO_STORES, "dead")
    taken = dead.take_files()
    dead.admit_idea({"learning_rate": 0.0003}, taken[0].name, 0, AdmissionReport())  # one in, then it dies
    layout.node_heartbeat("dead").write_text("{}")
    assert adopt_admissions(layout, "live", lease_s=10) == []     # recently alive: may resume
    old = time.time() - ADOPT_MIN_S - 60
    os.utime(layout.node_heartbeat("dead"), (old, old))
    assert adopt_admissions(layout, "live", lease_s=10) == [taken[0].name]
    report = Admitter(layout, default_space, NO_STORES, "live").admit_pending()
    assert queue.depth(layout) == 2 and report.duplicates == 0


def test_the_tail_reads_the_rows_its_own_node_appended(tmp_path, caplog):
    """The reader's one-row-per-id rule must not swallow a node's own rows (they feed the packing
    estimates and the pruner's curves)."""
    layout = Layout.at(tmp_path).ensure()
    tail = Tail(layout.leaderboard)
    assert leaderboard.append_once(layout, {"id": "a", "status": "done", "metric": 0.5}, tail)
    assert not leaderboard.append_once(layout, {"id": "a", "status": "done", "metric": 0.5}, tail)
    assert [r["id"] for r in tail.new_rows()] == ["a"]
    assert "second row" not in caplog.text
