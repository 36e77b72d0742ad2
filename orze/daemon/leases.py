"""This node's side of run leases: renew its own, notice when one was lost, break dead nodes'.

- `renew` rewrites the heartbeat of every run this node runs, and returns the runs whose claim is
  no longer this node's (another node presumed it dead during a stall longer than the lease): the
  caller stops those copies; their results are never recorded.
- `break_expired` re-queues (or records, if its result.json exists) every run whose owner's lease
  expired, through orze.store.transitions, this node's own included: a run it could neither record
  nor release (a full disk) is not running here (`mine`), so its unrenewed claim expires and is
  recovered like a dead node's. Runs the leaderboard shows as recorded are skipped (one
  directory listing instead of a stat per run: 100,000 finished runs are 100,000 metadata round
  trips on Lustre), except on every FULL_SCAN_EVERY-th scan, which also releases claims a crashed
  node left on runs it had recorded, and re-queues an idea.json that no claim covers (older than
  two lease periods; `Transitions.adopt_orphan`).
- `Renewer` renews them from a thread of its own as well, so a loop that waits (for a lock whose
  holder froze, on a slow mount) never lets this node's leases lapse; it stops renewing when the
  loop has made no pass for STUCK_PASSES lease periods (a wedged daemon must not hold runs forever).
- `adopt_admissions` hands the files a node was admitting back to the inbox once that node's
  heartbeat is ADOPT_AFTER_LEASES lease periods old (at least ADOPT_MIN_S): a node that died for
  good mid-file and never restarts loses none of its ideas (those it had admitted are recognised by
  their fingerprints' (file, index), so none is admitted twice).
- `recover_own` runs once at start-up: claims this node holds belong to workers of a previous
  incarnation; their orphaned workers (own sessions) are killed and the runs recovered.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

from orze.daemon.supervisor import Running
from orze.layout import RUN_CLAIM, RUN_IDEA, RUN_WORKER_PID, Layout
from orze.store import claims
from orze.store.lease import fs_now
from orze.store.transitions import Transitions

log = logging.getLogger(__name__)

FULL_SCAN_EVERY = 10      # lease scans between full scans (which also look into recorded runs)
STUCK_PASSES = 5          # lease periods without a loop pass after which the Renewer lets go
ADOPT_AFTER_LEASES = 10   # a silent node's half-admitted files go back to the inbox after this ...
ADOPT_MIN_S = 600.0       # ... and never sooner than this (a frozen node may still resume)


def claimed_dirs(layout: Layout, skip: set[str] | None = None) -> list[Path]:
    """Run directories holding a claim, not looking into those named in `skip`."""
    out = []
    try:
        with os.scandir(layout.exp) as it:
            for d in it:
                if skip and d.name in skip:
                    continue
                if d.is_dir() and os.path.exists(os.path.join(d.path, RUN_CLAIM)):
                    out.append(Path(d.path))
    except FileNotFoundError:
        pass
    return out


def orphaned_dirs(layout: Layout, skip: set[str]) -> list[Path]:
    """Run directories holding an idea.json but no claim (and not in `skip`)."""
    out = []
    try:
        with os.scandir(layout.exp) as it:
            for d in it:
                if d.name in skip or not d.is_dir():
                    continue
                if os.path.exists(os.path.join(d.path, RUN_IDEA)) and not os.path.exists(os.path.join(d.path, RUN_CLAIM)):
                    out.append(Path(d.path))
    except FileNotFoundError:
        pass
    return out


def adopt_admissions(layout: Layout, node: str, lease_s: float) -> list[str]:
    """Move the files of other nodes' admitting areas back into the inbox where the node's
    heartbeat (or, without one, the file itself) is older than max(ADOPT_AFTER_LEASES × lease_s,
    ADOPT_MIN_S) by the filesystem's clock. Returns the names moved."""
    stale_s = max(ADOPT_AFTER_LEASES * lease_s, ADOPT_MIN_S)
    moved: list[str] = []
    try:
        others = [d for d in os.listdir(layout.admitting) if d != node]
    except FileNotFoundError:
        return moved
    now = None
    for other in others:
        area = layout.admitting_for(other)
        try:
            names = [n for n in os.listdir(area) if not n.startswith(".")]
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not names:
            continue
        now = fs_now(layout.nodes) if now is None else now
        try:
            beat = layout.node_heartbeat(other).stat().st_mtime
        except FileNotFoundError:
            beat = None
        for n in names:
            try:
                seen = beat if beat is not None else os.lstat(area / n).st_mtime
                if now - seen <= stale_s:
                    continue
                os.rename(area / n, layout.inbox / n)
                moved.append(n)
                log.warning("node %s has been silent for %.0fs: its half-admitted %s is back in the inbox",
                            other, now - seen, n)
            except FileNotFoundError:
                continue
    return moved


class LeaseKeeper:
    def __init__(self, layout: Layout, node: str, transitions: Transitions, lease_s: float):
        self.layout, self.node, self.transitions, self.lease_s = layout, node, transitions, lease_s
        self.scans = 0

    def owns(self, r: Running) -> bool:
        c = claims.read_claim(r.run_dir)
        return c is not None and c.node == self.node and c.attempt == r.attempt

    def renew(self, running: list[Running]) -> list[Running]:
        lost = []
        for r in running:
            if not self.owns(r):
                lost.append(r)
                continue
            try:
                claims.beat(r.run_dir)
            except OSError as e:
                log.warning("%s: lease renewal failed: %s", r.entry.id, e)
        return lost

    def break_expired(self, mine: set[str], recorded: set[str]) -> None:
        self.scans += 1
        full = self.scans % FULL_SCAN_EVERY == 1
        for run_dir in claimed_dirs(self.layout, skip=None if full else recorded):
            if run_dir.name in mine:
                continue
            c = claims.read_claim(run_dir)
            # An unreadable claim (empty or torn: a holder killed or out of space while creating
            # it, by an older version or on a filesystem without hard links) is judged by its age
            # like any other, so it delays the run by one lease period, never forever.
            if claims.lease_age(run_dir) > self.lease_s:
                who = f"node {c.node}" if c is not None else "an unreadable claim"
                self.transitions.recover(run_dir, f"lease of {who} expired")
        if full:
            for run_dir in orphaned_dirs(self.layout, skip=recorded | mine):
                self.transitions.adopt_orphan(run_dir, min_age_s=2 * self.lease_s)

    def recover_own(self) -> None:
        host = socket.gethostname()
        for run_dir in claimed_dirs(self.layout):
            c = claims.read_claim(run_dir)
            if c is None or c.node != self.node:
                continue
            if c.host == host and c.pid != os.getpid() and _pid_alive(c.pid):
                continue  # another live daemon on this host uses the same node name
            if c.host == host:
                _kill_orphan_worker(run_dir)  # its worker outlived the daemon (own session)
            self.transitions.recover(run_dir, "restart")


def _kill_orphan_worker(run_dir: Path) -> None:
    try:
        pid = int((run_dir / RUN_WORKER_PID).read_text().strip())
        os.killpg(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Renewer:
    """Renews the claims of `running()` (the daemon's running experiments) every `every_s` seconds
    from a daemon thread, while `last_pass()` (monotonic time of the loop's last pass) is recent."""

    def __init__(self, keeper: LeaseKeeper, running, last_pass, every_s: float):
        self.keeper, self.running, self.last_pass, self.every_s = keeper, running, last_pass, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="orze-lease-renewer", daemon=True)

    def start(self) -> "Renewer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            if time.monotonic() - self.last_pass() > STUCK_PASSES * self.keeper.lease_s:
                continue  # the loop is wedged: let the leases lapse so other nodes take over
            try:
                for r in list(self.running()):
                    if self.keeper.owns(r):
                        claims.beat(r.run_dir)
            except Exception as e:  # never let the thread die: the loop renews too
                log.warning("lease renewal thread: %s", e)
