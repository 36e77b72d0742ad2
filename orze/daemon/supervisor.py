"""One running experiment: how it executes, its deadline, its progress, and how to stop it.

An experiment executes either in a process of its own (cold mode, `ColdProcess`) or as a job on a
slot's warm worker (orze.daemon.warm.WarmJob). Both are handles with the same small interface
(pid, poll, fileno, kill, close), so supervision, timeouts, stalls, leases and recording do not
depend on the mode.

Workers start in their own session (process group), so a timeout, a stall or a shutdown kills
everything the worker spawned, not only its top process. On Linux a cold worker also gets a pidfd
(a warm job has its event pipe), which lets the daemon sleep until something finishes instead of
polling.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orze.layout import RUN_LOG, RUN_OUTPUT
from orze.store.queue import Entry


def builtin_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "orze.worker", str(run_dir)]


class Execution(Protocol):
    pid: int

    def poll(self) -> int | None: ...
    def fileno(self) -> int | None: ...
    def kill(self, grace: float) -> None: ...
    def close(self) -> None: ...


def kill_group(proc: subprocess.Popen, grace: float) -> None:
    """Terminate a process group: SIGTERM, then SIGKILL after `grace` seconds, then stragglers."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def open_pidfd(pid: int) -> int | None:
    if hasattr(os, "pidfd_open"):
        try:
            return os.pidfd_open(pid)
        except OSError:
            return None
    return None


class ColdProcess:
    """Cold mode: a process per experiment; its exit status is the experiment's."""

    def __init__(self, argv: list[str], run_dir: Path, env: dict[str, str]):
        out = open(run_dir / RUN_OUTPUT, "ab")
        try:
            self.proc = subprocess.Popen(argv, cwd=run_dir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            out.close()
        self.pid = self.proc.pid
        self.pidfd = open_pidfd(self.pid)

    def poll(self) -> int | None:
        return self.proc.poll()

    def fileno(self) -> int | None:
        return self.pidfd

    def kill(self, grace: float) -> None:
        kill_group(self.proc, grace)

    def close(self) -> None:
        if self.pidfd is not None:
            try:
                os.close(self.pidfd)
            except OSError:
                pass
            self.pidfd = None


@dataclass
class Running:
    entry: Entry
    slot: int
    run_dir: Path
    handle: Execution
    started_at: float          # when the claim was made: the run's clock starts here
    attempt: int
    mode: str = "cold"
    last_progress: float = field(default_factory=time.time)
    last_log_size: int = -1
    stop_reason: str | None = None

    @property
    def pid(self) -> int:
        return self.handle.pid

    def poll(self) -> int | None:
        return self.handle.poll()

    def fileno(self) -> int | None:
        return self.handle.fileno()

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
        """Stop the experiment now (its whole process group)."""
        self.stop_reason = self.stop_reason or reason
        self.handle.kill(grace)

    def close(self) -> None:
        self.handle.close()
