"""A cross-process lock that works on Lustre and NFS: a short-lived lease (orze.store.lease).

flock is node-local or unsupported on these filesystems, so the lock is a lease file created
exclusively (by the research directory's claim method) holding its owner's token. A waiter breaks a
lock whose mtime is older than `stale_after` (judged on the filesystem's own clock): its holder is
taken to be dead. A waiter waits longer than that (`timeout` > `stale_after`), so a holder killed
while holding the lock delays the others but never makes them fail. Release never removes another
holder's lock.
"""

from __future__ import annotations

import time
from pathlib import Path

from orze.store.atomic import Method
from orze.store.lease import Lease, fs_now, new_token

__all__ = ["FileLock", "LockTimeout", "fs_now", "layout_lock"]


class LockTimeout(TimeoutError):
    pass


def layout_lock(layout, path: Path) -> FileLock:
    """The lock at `path` as the research directory `layout` (orze.layout.Layout) runs it: its
    claim method; stale after one lease period, so a frozen or dead holder delays the others by
    at most that; waiters wait half as long again, so they outlast it instead of failing."""
    return FileLock(path, timeout=1.5 * layout.lease_s, stale_after=layout.lease_s, method=layout.claim_method)


class FileLock:
    def __init__(self, path: Path, timeout: float = 180.0, stale_after: float = 120.0,
                 poll: float = 0.01, method: Method = "excl"):
        self.path = Path(path).resolve()
        self.lease = Lease(self.path, method, durable=False)
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll = poll
        self.token = new_token()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = self.poll
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while not self.lease.acquire({"owner": self.token}):
            self.lease.break_if_expired(self.stale_after)
            if time.monotonic() > deadline:
                raise LockTimeout(f"{self.path}: held by another process for over {self.timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def still_held(self) -> bool:
        """Whether this lock is still ours (a holder frozen past `stale_after` may have lost it):
        checked right before a guarded write, so a holder resumed after a stall writes nothing."""
        return self.lease.held_by(self.token, key="owner")

    def release(self) -> None:
        self.lease.release(self.token, key="owner")

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
