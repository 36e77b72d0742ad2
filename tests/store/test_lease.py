"""The one lease (orze.store.lease) behind claims, the file lock and agent hosting: exclusive by
either claim method, renewed on the filesystem's clock, broken by exactly one breaker, released
only by its holder."""

import errno
import json
import os
import threading
import time

import pytest

from orze.layout import Layout
from orze.store.lease import Lease, new_token
from orze.store.lock import FileLock


@pytest.mark.parametrize("method", ["excl", "link"])
def test_one_holder_and_release_only_by_token(tmp_path, method):
    lease = Lease(tmp_path / "l", method)
    a, b = new_token(), new_token()
    assert lease.acquire({"token": a}) and not lease.acquire({"token": b})
    assert lease.held_by(a) and not lease.held_by(b)
    assert not lease.release(b) and lease.held_by(a)      # not b's to release
    assert lease.release(a) and not lease.path.exists()


def test_renewal_and_age_use_the_beat_file_and_expiry_breaks_once(tmp_path):
    lease = Lease(tmp_path / "claim", beat=tmp_path / "heartbeat")
    assert lease.acquire({"node": "n"}) and (tmp_path / "heartbeat").exists()
    old = time.time() - 500
    os.utime(tmp_path / "heartbeat", (old, old))
    assert lease.age() > 400
    assert not lease.break_if_expired(1000)
    lease.renew()
    assert lease.age() < 5 and not lease.break_if_expired(60)
    os.utime(tmp_path / "heartbeat", (old, old))
    wins = []
    threads = [threading.Thread(target=lambda: wins.append(lease.break_if_expired(60, keep=True))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1 and not lease.path.exists()
    assert len(list(tmp_path.glob("claim.broken.*"))) == 1      # kept as a record of who held it


def test_no_lease_has_infinite_age_and_is_never_broken(tmp_path):
    lease = Lease(tmp_path / "absent")
    assert lease.age() == float("inf") and not lease.break_if_expired(0)


@pytest.mark.parametrize("method", ["excl", "link"])
def test_file_lock_uses_the_research_directorys_claim_method(tmp_path, method, monkeypatch):
    """The lock honours scheduler.claim_method. Both publish the lock by link(2); they differ in
    what they trust when link(2) reports an error although it made the link (an NFS client whose
    retransmitted request found its own earlier link): "link" asks the link count and holds the
    lock, "excl" trusts the error."""
    real_link = os.link

    def link_then_fail(src, dst, *a, **k):
        real_link(src, dst, *a, **k)
        raise OSError(errno.EIO, "simulated lost reply")

    monkeypatch.setattr(os, "link", link_then_fail)
    layout = Layout.at(tmp_path).with_claim_method(method)
    lock = FileLock(tmp_path / "x.lock", method=layout.claim_method, timeout=0.5)
    if method == "link":
        with lock:
            assert json.loads((tmp_path / "x.lock").read_text())["owner"] == lock.token
    else:
        with pytest.raises(OSError, match="simulated lost reply"):
            lock.acquire()


def test_a_waiter_outlasts_a_dead_holders_lock(tmp_path):
    """A holder killed while holding the lock leaves it behind; a waiter breaks it once it is stale
    rather than giving up first (the default timeout exceeds the staleness bound)."""
    path = tmp_path / "l.lock"
    path.write_text(json.dumps({"owner": "dead:1:x"}))
    lock = FileLock(path, stale_after=0.5)
    assert lock.timeout > lock.stale_after
    t0 = time.monotonic()
    with lock:
        assert json.loads(path.read_text())["owner"] == lock.token
    assert 0.4 < time.monotonic() - t0 < 30
