"""The daemon's side of warm workers: one long-lived worker process per slot (orze.worker.warm).

The pool starts a worker for every slot when the daemon starts and the daemon claims work for a
slot only once its worker is ready (torch imported, device initialised), so a claimed idea never
waits on imports while another node could have run it. A claimed experiment is handed over as one
line on the worker's stdin and reported back as one line on its event pipe, which the daemon's
event loop watches (as it watches a starting worker's), so a finished job or a newly ready worker
wakes the daemon at once.

Failure handling never involves the daemon's own process:
- a worker that dies mid-job (segfault, OOM kill, SIGKILL) ends that job with the worker's exit
  status, which the daemon classifies and retries like any crashed attempt; the slot then gets a
  fresh worker;
- a worker that retires itself (job count or memory growth bound) is replaced the same way;
- a slot whose worker keeps dying before it is ready (a broken environment) falls back to cold
  mode, a process per experiment, and says so, rather than looping.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from orze.config import WorkerConfig
from orze.daemon.slots import Slot
from orze.daemon.supervisor import kill_group
from orze.vocab import WorkerMode

log = logging.getLogger(__name__)

NOT_READY_LIMIT = 3          # deaths before ready, within the window, before a slot goes cold
NOT_READY_WINDOW_S = 300.0
READY_TIMEOUT_S = 600.0      # a worker not ready by then (a hung device init) is killed and counted
EXIT_WITHOUT_REPORT = 70     # the worker exited 0 but never reported the job (treated as a crash)


def warm_command(cfg: WorkerConfig, log: Path) -> list[str]:
    return [sys.executable, "-m", "orze.worker.warm", "--cache-mb", str(cfg.cache_mb),
            "--max-jobs", str(cfg.max_jobs_per_process), "--max-growth-mb", str(cfg.max_memory_growth_mb),
            "--log", str(log)]


class WarmProcess:
    """One slot's worker process and the two pipes to it."""

    def __init__(self, slot: int, argv: list[str], env: dict[str, str], cwd: Path):
        self.slot = slot
        self.spawned_at = time.time()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buffer = b""
        self.ready: dict[str, Any] | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self.busy: str | None = None   # run_dir of the job it is running
        self.jobs = 0
        self.eof = False
        self.retired: str | None = None

    def fileno(self) -> int | None:
        return None if self.eof or self.proc.stdout is None else self.proc.stdout.fileno()

    def pump(self) -> None:
        """Read whatever the worker has written (never blocks) and file its events."""
        if self.eof or self.proc.stdout is None:
            return
        while True:
            try:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready":
                self.ready = ev
            elif ev.get("event") == "done":
                self.results[ev.get("run_dir")] = ev
                self.jobs = int(ev.get("jobs", self.jobs + 1))
                if ev.get("retire"):
                    self.retired = ev["retire"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def submit(self, job: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        self.busy = job["run_dir"]

    def kill(self, grace: float) -> None:
        kill_group(self.proc, grace)
        self.close_pipes()

    def stop(self, grace: float = 3.0) -> None:
        """Ask an idle worker to exit (EOF on its job pipe), then make sure it did."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        kill_group(self.proc, 0.5)
        self.close_pipes()

    def close_pipes(self) -> None:
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        self.eof = True


class WarmJob:
    """An experiment running on a warm process: the Execution handle the daemon supervises."""

    def __init__(self, process: WarmProcess, run_dir: Path):
        self.process, self.run_dir = process, str(run_dir)
        self.pid = process.pid
        self.code: int | None = None
        self.reported = False

    @property
    def never_started(self) -> bool:
        """The worker died before it was ready, so the experiment never began: not an attempt."""
        return self.code is not None and not self.reported and self.process.ready is None

    def poll(self) -> int | None:
        if self.code is not None:
            return self.code
        p = self.process
        p.pump()
        if self.run_dir in p.results:
            self.code, self.reported = int(p.results.pop(self.run_dir).get("code", 1)), True
        elif not p.alive():
            p.pump()  # drain what it wrote before it died
            if self.run_dir in p.results:
                self.code, self.reported = int(p.results.pop(self.run_dir).get("code", 1)), True
            else:
                rc = p.proc.returncode
                self.code = rc if rc != 0 else EXIT_WITHOUT_REPORT
        if self.code is not None and p.busy == self.run_dir:
            p.busy = None
        return self.code

    def fileno(self) -> int | None:
        return self.process.fileno()

    def kill(self, grace: float) -> None:
        # The job cannot be stopped without its process: the slot gets a fresh worker.
        self.process.kill(grace)
        self.poll()

    def close(self) -> None:
        pass


class WarmPool:
    """A warm worker per slot, kept alive and replaced as needed."""

    def __init__(self, slots: list[Slot], cfg: WorkerConfig, base_env: dict[str, str], log_dir: Path,
                 cwd: Path):
        self.slots = {s.index: s for s in slots}
        self.cfg, self.base_env, self.log_dir, self.cwd = cfg, base_env, log_dir, cwd
        self.procs: dict[int, WarmProcess] = {}
        self.not_ready_deaths: dict[int, deque[float]] = {i: deque() for i in self.slots}
        self.cold: set[int] = set()      # slots that fell back to a process per experiment

    def log_path(self, slot: int) -> Path:
        return self.log_dir / f"slot-{slot}.log"

    def _spawn(self, slot: Slot) -> WarmProcess | None:
        env = {**self.base_env, **slot.env}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            p = WarmProcess(slot.index, warm_command(self.cfg, self.log_path(slot.index)), env, self.cwd)
        except OSError as e:
            log.warning("slot %s: cannot start a warm worker (%s)", slot.label, e)
            self._note_not_ready(slot.index)
            return None
        self.procs[slot.index] = p
        return p

    def _note_not_ready(self, slot: int) -> None:
        now = time.time()
        deaths = self.not_ready_deaths[slot]
        deaths.append(now)
        while deaths and deaths[0] < now - NOT_READY_WINDOW_S:
            deaths.popleft()
        if len(deaths) >= NOT_READY_LIMIT and slot not in self.cold:
            self.cold.add(slot)
            log.warning("slot %s: warm worker died %d times before becoming ready (see %s); this slot "
                        "runs cold from now on", self.slots[slot].label, len(deaths), self.log_path(slot))

    def tend(self) -> None:
        """Replace dead idle workers; start missing ones (never touches a busy one)."""
        for index, slot in self.slots.items():
            if index in self.cold:
                continue
            p = self.procs.get(index)
            if p is not None:
                if p.busy is not None:
                    continue
                p.pump()
                if p.ready is None and p.alive() and time.time() - p.spawned_at > READY_TIMEOUT_S:
                    log.warning("slot %s: warm worker %d not ready after %.0fs; killing it",
                                slot.label, p.pid, READY_TIMEOUT_S)
                    p.kill(1.0)
                if p.retired:
                    p.stop()  # it is exiting by itself after its last report
                elif p.alive():
                    continue
                if p.ready is None:
                    self._note_not_ready(index)
                elif p.retired:
                    log.info("slot %s: warm worker %d retired (%s); replacing it", slot.label, p.pid, p.retired)
                p.close_pipes()
                del self.procs[index]
                if index in self.cold:
                    continue
            self._spawn(slot)

    def usable(self, slot: int) -> bool:
        return slot not in self.cold

    def ready(self, slot: int) -> bool:
        """Whether a job can be handed to this slot now (a cold-fallback slot always can)."""
        if slot in self.cold:
            return True
        p = self.procs.get(slot)
        if p is None:
            return False
        p.pump()
        return p.ready is not None and p.busy is None and not p.retired and p.alive()

    def starting_fds(self) -> list[int]:
        """Event pipes of workers still starting: their ready line should wake the daemon."""
        return [fd for p in self.procs.values() if p.ready is None and (fd := p.fileno()) is not None]

    def wait_ready(self, timeout: float) -> None:
        """Start every slot's worker and wait (bounded) until each is ready or runs cold."""
        import selectors
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.tend()
            if all(self.ready(i) for i in self.slots):
                return
            fds = self.starting_fds()
            if not fds:
                time.sleep(0.05)
                continue
            sel = selectors.DefaultSelector()
            for fd in fds:
                sel.register(fd, selectors.EVENT_READ)
            try:
                sel.select(min(1.0, max(0.0, deadline - time.monotonic())))
            finally:
                sel.close()

    def start(self, slot: int, job: dict[str, Any]) -> WarmJob:
        """Hand a job to the slot's worker (spawning one if needed); OSError if it cannot."""
        p = self.procs.get(slot)
        if p is not None and (not p.alive() or p.busy is not None or p.retired):
            self.tend()
            p = self.procs.get(slot)
        if p is None:
            p = self._spawn(self.slots[slot])
            if p is None:
                raise OSError(f"no warm worker for slot {slot}")
        try:
            p.submit(job)
        except (OSError, ValueError) as e:   # it died just now: the next tend replaces it
            p.busy = None
            raise OSError(f"warm worker {p.pid} did not take the job: {e}") from None
        return WarmJob(p, Path(job["run_dir"]))

    def describe(self, slot: int) -> dict[str, Any]:
        if slot in self.cold:
            return {"mode": "cold (fallback)"}
        p = self.procs.get(slot)
        if p is None:
            return {"mode": str(WorkerMode.WARM), "pid": None}
        p.pump()
        return {"mode": str(WorkerMode.WARM), "pid": p.pid, "ready": p.ready is not None, "jobs": p.jobs,
                "age_s": round(time.time() - p.spawned_at, 1)}

    def stop_all(self) -> None:
        for p in list(self.procs.values()):
            p.stop()
        self.procs.clear()
