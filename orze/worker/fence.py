"""Fencing: an execution whose lease lapsed stops itself before anyone may take its run over.

A run directory must never be written by two executions. Its owner's daemon renews the run's
lease (the `heartbeat` mtime, on the filesystem's clock) every lease_s/4 at most; another node
breaks the lease only once it is lease_s old. A daemon can freeze (SIGSTOP, a hung mount, a
suspended VM) while its worker goes on, so the worker watches its own lease: as soon as the
heartbeat is older than FENCE_SHARE × lease_s, or the claim no longer holds the token it started
under (broken and re-taken), it writes failure.json (class `fenced`) and ends at once, which is
before the lease can be broken (lease_s) and the run started elsewhere.

- the built-in worker watches from a thread of its own (`watching`, used by orze.worker.job);
- a custom command runs under `python -m orze.worker.fence -- ARGV...`, which starts it in the
  same process group, watches, and kills the group when the lease lapses.
The daemon that owned a fenced attempt, if it still holds the lease when it resumes, puts the idea
back unchanged (no attempt used); otherwise the attempt is discarded (another node runs it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from orze.layout import RUN_CLAIM, RUN_FAILURE, RUN_HEARTBEAT
from orze.store.atomic import atomic_write_json, read_json_or_none
from orze.store.lease import fs_now

FENCE_SHARE = 0.5     # of lease_s: the worker stops well before the lease may be broken
FENCED_EXIT = 75      # exit status of a fenced built-in worker (the fence around a command SIGKILLs
                      # its whole process group, itself included: failure.json is what tells)
LEASE_ENV = "ORZE_LEASE_S"


class Fence:
    def __init__(self, run_dir: Path, lease_s: float):
        self.run_dir, self.lease_s = Path(run_dir), float(lease_s)
        holder = read_json_or_none(self.run_dir / RUN_CLAIM) or {}
        self.token = holder.get("token")

    def lapsed(self) -> str | None:
        """Why this execution must stop now, or None while its lease holds."""
        holder = read_json_or_none(self.run_dir / RUN_CLAIM)
        if holder is None:
            if not (self.run_dir / RUN_CLAIM).exists():
                return "its claim was broken (the lease was taken over)"
        elif self.token is not None and holder.get("token") != self.token:
            return "its claim is another execution's now"
        try:
            age = fs_now(self.run_dir) - (self.run_dir / RUN_HEARTBEAT).stat().st_mtime
        except FileNotFoundError:
            return None   # never renewed yet: the claim's age is its owner's to judge
        if age > FENCE_SHARE * self.lease_s:
            return f"its lease was not renewed for {age:.0f}s (the owning daemon is frozen or gone)"
        return None

    def check(self) -> str | None:
        """`lapsed()`, with an unreadable filesystem read as "look again" (never a guess)."""
        try:
            return self.lapsed()
        except OSError:
            return None

    def stop(self, why: str) -> None:
        with contextlib.suppress(OSError):
            atomic_write_json(self.run_dir / RUN_FAILURE, {"class": "fenced", "message": f"fenced: {why}"})
        print(f"orze worker: fenced: {why}", file=sys.stderr, flush=True)

    @property
    def every_s(self) -> float:
        return max(0.2, min(2.0, self.lease_s / 20))


def lease_from_env() -> float | None:
    try:
        v = float(os.environ.get(LEASE_ENV, ""))
    except ValueError:
        return None
    return v if v > 0 else None


@contextlib.contextmanager
def watching(run_dir: Path, lease_s: float | None):
    """Watch the lease of `run_dir` from a thread while the block runs; a lapse ends the process
    (os._exit: no code of this execution may write anything more)."""
    if not lease_s:
        yield
        return
    fence, done = Fence(run_dir, lease_s), threading.Event()

    def watch() -> None:
        while not done.wait(fence.every_s):
            if why := fence.check():
                fence.stop(why)
                os._exit(FENCED_EXIT)
    t = threading.Thread(target=watch, name="orze-fence", daemon=True)
    t.start()
    try:
        yield
    finally:
        done.set()


def main(argv: list[str] | None = None) -> int:
    """`python -m orze.worker.fence -- ARGV... RUN_DIR`: run a custom worker under the fence."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m orze.worker.fence -- COMMAND... RUN_DIR", file=sys.stderr)
        return 2
    run_dir, lease_s = Path(argv[-1]), lease_from_env()
    proc = subprocess.Popen(argv)
    fence = Fence(run_dir, lease_s) if lease_s else None
    while True:
        try:
            return _exit_like(proc.wait(timeout=fence.every_s if fence else None))
        except subprocess.TimeoutExpired:
            pass
        if why := fence.check():
            fence.stop(why)
            with contextlib.suppress(OSError):
                os.killpg(os.getpgrp(), signal.SIGKILL)   # the command and anything it started
            return FENCED_EXIT


def _exit_like(code: int) -> int:
    """The command's exit status as this process's own: a command ended by a signal ends the fence
    by the same signal, so the daemon sees `killed by signal N`, not an exit status."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1)   # the signal is delivered before this returns
    return code


if __name__ == "__main__":
    sys.exit(main())
