"""One running experiment: how it starts, how it executes, its deadline, its progress, and how to
stop it.

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
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orze.config import WorkerConfig
from orze.layout import RUN_LOG, RUN_OUTPUT, Layout
from orze.store.queue import Entry
from orze.vocab import FailureClass, WorkerMode


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
    mode: WorkerMode = WorkerMode.COLD
    # Time limits and stalls run on this node's monotonic clock, so a wall-clock jump (NTP, a VM
    # resumed) can neither fail a healthy run nor keep a dead one alive.
    started_mono: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
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
            self.last_progress = time.monotonic()
            return True
        return False

    def kill(self, reason: str, grace: float = 5.0) -> None:
        """Stop the experiment now (its whole process group)."""
        self.stop_reason = self.stop_reason or reason
        self.handle.kill(grace)

    def close(self) -> None:
        self.handle.close()


class Launcher:
    """Starts an experiment on a slot: as a job on the slot's warm worker when the slot has one,
    else in a process of its own (the built-in worker or the configured command)."""

    def __init__(self, layout: Layout, cfg: WorkerConfig, pool, env: dict[str, str]):
        self.layout, self.cfg, self.pool, self.env = layout, cfg, pool, env

    def launch(self, entry: Entry, run_dir: Path, slot, claimed_at: float, attempt: int) -> Running:
        """OSError if the worker cannot be started."""
        if self.pool is not None and self.pool.usable(slot.index):
            handle = self.pool.start(slot.index, {"run_dir": str(run_dir), "root": str(self.layout.root),
                                                  "claimed_at": claimed_at, "run_id": entry.id})
            mode = WorkerMode.WARM
        else:
            # A custom command runs under the fence (orze/worker/fence.py), which stops it when
            # its lease lapses; the built-in worker fences itself.
            argv = ([sys.executable, "-m", "orze.worker.fence", "--", *self.cfg.command, str(run_dir)]
                    if self.cfg.command else builtin_command(run_dir))
            env = {**self.env, **slot.env, "ORZE_RUN_ID": entry.id, "ORZE_CLAIMED_AT": repr(claimed_at)}
            handle, mode = ColdProcess(argv, run_dir, env), WorkerMode.COLD
        return Running(entry, slot.index, run_dir, handle, claimed_at, attempt, mode=mode)


def overdue(r: Running, now: float, timeout_s: float, stall_s: float) -> FailureClass | None:
    """Whether a running experiment passed its time limit or stopped making progress; `now` is
    time.monotonic()."""
    r.progressed()
    if now - r.started_mono > timeout_s:
        return FailureClass.TIMEOUT
    if now - r.last_progress > stall_s:
        return FailureClass.STALLED
    return None


def wait_for(fds: list[int], timeout: float, busy: bool) -> None:
    """Sleep until one of `fds` (pidfds, warm workers' event pipes) is readable or `timeout` passes;
    with nothing to wait on while experiments run (no pidfd on this system), poll briefly."""
    if timeout <= 0:
        return
    if not fds:
        time.sleep(min(timeout, 0.05) if busy else timeout)
        return
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        try:
            sel.select(timeout)
        except InterruptedError:
            pass
