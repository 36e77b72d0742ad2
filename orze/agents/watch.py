"""A hosted agent watches its own lease and ends itself when its host is gone.

`orze run`'s AgentHost starts each agent with ORZE_AGENT_LEASE (the lease token),
ORZE_AGENT_LEASE_S (the lease period) and ORZE_AGENT_HOST_PID (the daemon's pid) in its
environment. A thread in the agent checks every 0.2 s that

  - the daemon that started it is still its parent (a `kill -9` of the daemon is seen at once),

and every `check_s` (at most 1 s; these read and write the shared filesystem) that

  - the lease file still holds its token (another node took it over), and
  - the lease was renewed within `stale_after` = lease_s / 2 by the filesystem's clock (the host
    renews every lease_s / 4, so a stalled or partitioned host is noticed before any other node
    may break the lease at lease_s).

When one fails the watch is `lost` (with the reason): the loop starts no provider call and submits
nothing after that, and cuts its waits short. If the agent has not exited `grace_s` later (a call
stuck in a slow reply), the process exits at once with EXIT_LEASE_LOST; the host does not count
that exit as a failure. So an agent never outlives its host by more than
stale_after + check_s + grace_s, which is under the lease period.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from orze.agents.host import EXIT_LEASE_LOST, holds, lease_age

log = logging.getLogger(__name__)
PARENT_CHECK_S = 0.2


class LeaseWatch:
    def __init__(self, path: Path, token: str, lease_s: float, host_pid: int | None = None,
                 check_s: float | None = None, grace_s: float | None = None, hard_exit: bool = True):
        self.path = Path(path)
        self.token = token
        self.lease_s = lease_s
        self.stale_after = lease_s / 2
        self.host_pid = host_pid
        self.check_s = check_s if check_s is not None else min(1.0, lease_s / 10)
        self.grace_s = grace_s if grace_s is not None else lease_s / 4
        self.hard_exit = hard_exit
        self.lost = threading.Event()
        self.reason = ""
        self._thread = threading.Thread(target=self._run, name="lease-watch", daemon=True)

    def start(self) -> "LeaseWatch":
        self._thread.start()
        return self

    def parent_gone(self) -> str | None:
        if self.host_pid is not None and os.getppid() != self.host_pid:
            return f"the host process {self.host_pid} is gone"
        return None

    def check(self) -> str | None:
        """Why the lease is no longer ours, or None while it is."""
        why = self.parent_gone()
        if why:
            return why
        if not holds(self.path, self.token):
            return "the lease was taken over by another node"
        try:
            age = lease_age(self.path)
        except OSError as e:  # an unreadable shared filesystem: do not guess, look again
            log.warning("lease check failed: %s", e)
            return None
        if age is None:
            return "the lease file is gone"
        if age > self.stale_after:
            return f"the lease was not renewed for {age:.0f}s (host stalled or gone)"
        return None

    def _run(self) -> None:
        next_full = 0.0
        while not self.lost.is_set():
            now = time.monotonic()
            why = self.parent_gone()
            if why is None and now >= next_full:
                why = self.check()
                next_full = now + self.check_s
            if why:
                self.reason = why
                self.lost.set()
                break
            time.sleep(min(PARENT_CHECK_S, self.check_s))
        if self.hard_exit:
            time.sleep(self.grace_s)
            # Still alive after the grace: a provider call is stuck. Nothing half-written can be
            # left behind (every file is written by rename or a single append), so exit now.
            print(f"agent: {self.reason}; exiting", flush=True)
            os._exit(EXIT_LEASE_LOST)

    def __call__(self) -> bool:
        return self.lost.is_set()
