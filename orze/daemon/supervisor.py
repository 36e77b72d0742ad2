"""One running worker: its process group, its deadline, its progress, and how to stop it.

Workers start in their own session (process group), so a timeout, a stall or a shutdown kills
everything the worker spawned, not only its top process. On Linux each worker also gets a pidfd,
which lets the daemon sleep until a worker exits instead of polling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orze.layout import RUN_LOG, RUN_OUTPUT
from orze.store.queue import Entry


def builtin_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "orze.worker", str(run_dir)]


@dataclass
class Running:
    entry: Entry
    slot: int
    run_dir: Path
    proc: subprocess.Popen
    started_at: float
    attempt: int
    pidfd: int | None = None
    last_progress: float = field(default_factory=time.time)
    last_log_size: int = -1
    stop_reason: str | None = None

    @classmethod
    def start(cls, entry: Entry, slot: int, run_dir: Path, argv: list[str], env: dict[str, str],
              attempt: int) -> "Running":
        out = open(run_dir / RUN_OUTPUT, "ab")
        try:
            proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                pidfd = None
        return cls(entry, slot, run_dir, proc, time.time(), attempt, pidfd)

    def poll(self) -> int | None:
        return self.proc.poll()

    def progressed(self) -> bool:
        """True if the worker's log grew since the last look (stall detection)."""
        size = -1
        for name in (RUN_LOG, RUN_OUTPUT):
            try:
                size += (self.run_dir / name).stat().st_size
            except FileNotFoundError:
                pass
        if size != self.last_log_size:
            self.last_log_size = size
            self.last_progress = time.time()
            return True
        return False

    def kill(self, reason: str, grace: float = 5.0) -> None:
        """Terminate the whole process group: SIGTERM, then SIGKILL after `grace` seconds."""
        self.stop_reason = self.stop_reason or reason
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Reap any stragglers left in the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass
            self.pidfd = None
