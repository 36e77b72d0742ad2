"""Claims and leases on runs/exp/<id>/: a run's claim is a lease (orze.store.lease).

A claim is the file `claim` holding the owner's record (node, slot, pid, attempt), created
exclusively by the configured method. Its owner renews the lease by rewriting `heartbeat`; the lease
is judged against the filesystem's own clock. An expired claim is broken by renaming it to
`claim.broken.<hex>` (kept as a record of who held it): exactly one breaker wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orze.layout import RUN_CLAIM, RUN_HEARTBEAT
from orze.store.atomic import Method, read_json_or_none
from orze.store.lease import Lease


@dataclass
class Claim:
    node: str
    slot: int
    pid: int
    attempt: int
    claimed_at: float
    host: str = ""
    token: str = ""      # this execution's identity: its worker stops when the claim holds another

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def lease(run_dir: Path, method: Method = "excl") -> Lease:
    return Lease(run_dir / RUN_CLAIM, method, beat=run_dir / RUN_HEARTBEAT)


def claim(run_dir: Path, c: Claim, method: Method = "excl") -> bool:
    return lease(run_dir, method).acquire(c.to_json())


def read_claim(run_dir: Path) -> Claim | None:
    data = read_json_or_none(run_dir / RUN_CLAIM)
    try:
        return Claim(**data) if data is not None else None
    except TypeError:
        return None


def beat(run_dir: Path) -> None:
    """Renew the lease: rewrite the heartbeat (its mtime is the lease, on the filesystem's clock)."""
    lease(run_dir).renew()


def lease_age(run_dir: Path, now: float | None = None) -> float:
    """Seconds since the last heartbeat, by the filesystem's clock (inf if there is none)."""
    return lease(run_dir).age(now)


def break_claim(run_dir: Path) -> bool:
    """Rename the claim away; True for the one caller whose rename won."""
    return lease(run_dir).break_(keep=True)


def release(run_dir: Path) -> None:
    lease(run_dir).release()

