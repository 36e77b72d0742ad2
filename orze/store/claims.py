"""Claims and leases on runs/exp/<id>/.

A claim is the file `claim`, created with O_CREAT|O_EXCL (or, with method "link", a unique file
linked to the claim name and trusted only if its link count is 2: the portable recipe where
O_EXCL is doubtful). Its owner renews the lease by touching `heartbeat`; the lease is judged
against the filesystem's own clock (the mtime of a file just written there), never another
host's time.time(). An expired claim is broken by renaming it away: exactly one breaker wins.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orze.layout import RUN_CLAIM, RUN_HEARTBEAT
from orze.store.lock import fs_now

Method = Literal["excl", "link"]


@dataclass
class Claim:
    node: str
    slot: int
    pid: int
    attempt: int
    claimed_at: float
    host: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def create_exclusive(path: Path, data: bytes, method: Method = "excl") -> bool:
    """Create `path` holding `data` iff it does not exist; True if this caller created it."""
    if method == "excl":
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return True
    unique = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    with open(unique, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        try:
            os.link(unique, path)
        except FileExistsError:
            return False
        except OSError:
            pass  # NFS may report failure although the link was made: the link count decides
        return os.stat(unique).st_nlink == 2
    finally:
        os.unlink(unique)


def claim(run_dir: Path, c: Claim, method: Method = "excl") -> bool:
    ok = create_exclusive(run_dir / RUN_CLAIM, json.dumps(c.to_json()).encode(), method)
    if ok:
        beat(run_dir)
    return ok


def read_claim(run_dir: Path) -> Claim | None:
    try:
        return Claim(**json.loads((run_dir / RUN_CLAIM).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def beat(run_dir: Path) -> None:
    """Renew the lease: rewrite the heartbeat (its mtime is the lease, on the filesystem's clock)."""
    path = run_dir / RUN_HEARTBEAT
    with open(path, "w") as f:
        f.write(f"{time.time()}\n")


def lease_age(run_dir: Path, now: float | None = None) -> float:
    """Seconds since the last heartbeat, by the filesystem's clock (inf if there is none)."""
    try:
        mtime = (run_dir / RUN_HEARTBEAT).stat().st_mtime
    except FileNotFoundError:
        try:
            mtime = (run_dir / RUN_CLAIM).stat().st_mtime
        except FileNotFoundError:
            return float("inf")
    return (fs_now(run_dir) if now is None else now) - mtime


def break_claim(run_dir: Path) -> bool:
    """Rename the claim away; True for the one caller whose rename won."""
    grave = run_dir / f"claim.broken.{secrets.token_hex(4)}"
    try:
        os.rename(run_dir / RUN_CLAIM, grave)
    except FileNotFoundError:
        return False
    return True


def release(run_dir: Path) -> None:
    for name in (RUN_CLAIM, RUN_HEARTBEAT):
        try:
            (run_dir / name).unlink()
        except FileNotFoundError:
            pass
