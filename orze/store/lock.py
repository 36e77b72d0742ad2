"""A cross-process lock that works on Lustre and NFS: exclusive creation of a lock file.

flock is node-local or unsupported on these filesystems, so the lock is a file created with
O_CREAT|O_EXCL holding its owner. The holder refreshes its mtime while it holds it; a lock whose
mtime is older than `stale_after` (judged against the filesystem's own clock, by touching a probe
file next to it) is broken by renaming it away, which exactly one breaker wins.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from pathlib import Path


def fs_now(directory: Path) -> float:
    """The filesystem's current time: the mtime of a file we just wrote there."""
    probe = directory / f".clock.{socket.gethostname()}.{os.getpid()}"
    with open(probe, "w") as f:
        f.write("")
    try:
        return probe.stat().st_mtime
    finally:
        try:
            probe.unlink()
        except FileNotFoundError:
            pass


class LockTimeout(TimeoutError):
    pass


class FileLock:
    def __init__(self, path: Path, timeout: float = 60.0, stale_after: float = 120.0,
                 poll: float = 0.01):
        self.path = Path(path).resolve()
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll = poll
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = self.poll
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._break_if_stale()
                if time.monotonic() > deadline:
                    raise LockTimeout(f"{self.path}: held by another process for over {self.timeout}s")
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            try:
                os.write(fd, json.dumps({"owner": self.token}).encode())
            finally:
                os.close(fd)
            return

    def _break_if_stale(self) -> None:
        try:
            age = fs_now(self.path.parent) - self.path.stat().st_mtime
        except FileNotFoundError:
            return
        if age > self.stale_after:
            grave = self.path.with_name(f"{self.path.name}.stale.{secrets.token_hex(4)}")
            try:
                os.rename(self.path, grave)  # exactly one breaker's rename succeeds
                grave.unlink()
            except FileNotFoundError:
                pass

    def release(self) -> None:
        """Remove the lock only if it is still ours: rename it aside (atomic), check the owner
        of what was renamed, and put it back if our lock had been broken and taken meanwhile."""
        grave = self.path.with_name(f"{self.path.name}.release.{secrets.token_hex(4)}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return
        try:
            mine = json.loads(grave.read_text()).get("owner") == self.token
        except (OSError, ValueError):
            mine = False
        if not mine:
            try:
                os.link(grave, self.path)  # restore the other holder's lock (fails if re-taken)
            except OSError:
                pass
        try:
            grave.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
