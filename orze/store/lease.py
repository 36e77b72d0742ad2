"""Exclusive, renewable holds on a shared filesystem: the one lease behind run claims
(orze.store.claims), the cross-process lock (orze.store.lock) and agent hosting.

Contract:
- A lease is a file created exclusively (`create_exclusive`, by the research directory's
  `scheduler.claim_method`: O_EXCL, or link(2) + link count where O_EXCL is doubtful) holding its
  holder's record, a JSON object.
- The holder renews it by touching its beat file: the lease file itself, or a separate file (a run's
  `heartbeat`). Its age is judged on the filesystem's own clock (`fs_now`: the mtime of a file just
  written next to it), never on another host's clock, since node clocks differ.
- An expired lease is broken by one rename to a unique name: exactly one breaker wins.
- `release(token)` removes the lease only if it still holds that token: it is renamed aside (atomic),
  its token checked, and put back if it was another holder's (ours had been broken and re-taken).
  `release()` without a token removes it unconditionally (for a holder that knows it holds it).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orze.store.atomic import Method, create_exclusive, read_json_or_none


def fs_now(directory: Path) -> float:
    """The filesystem's current time: the mtime of a file we just wrote there."""
    probe = Path(directory) / f".clock.{socket.gethostname()}.{os.getpid()}"
    with open(probe, "w") as f:
        f.write("")
    try:
        return probe.stat().st_mtime
    finally:
        try:
            probe.unlink()
        except FileNotFoundError:
            pass


def new_token() -> str:
    """A holder identity that is unique across hosts, processes and acquisitions."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(6)}"


@dataclass(frozen=True)
class Lease:
    path: Path
    method: Method = "excl"
    beat: Path | None = None     # renewal file; None: the lease file's own mtime
    durable: bool = True         # fsync the lease file on creation (not needed for a short lock)

    def acquire(self, holder: dict[str, Any]) -> bool:
        """Create the lease holding `holder`; True if this caller now holds it."""
        ok = create_exclusive(self.path, json.dumps(holder).encode(), self.method, self.durable)
        if ok and self.beat is not None:
            self.renew()
        return ok

    def holder(self) -> dict[str, Any] | None:
        return read_json_or_none(self.path)

    def held_by(self, token: str, key: str = "token") -> bool:
        h = self.holder()
        return h is not None and h.get(key) == token

    def renew(self) -> None:
        """Touch the beat file; its mtime (set by the file server) is the lease."""
        if self.beat is None:
            os.utime(self.path)
            return
        try:
            os.utime(self.beat)   # metadata only: renewing needs no free blocks on a full disk
        except FileNotFoundError:
            with open(self.beat, "w") as f:
                f.write(f"{time.time()}\n")

    def age(self, now: float | None = None) -> float:
        """Seconds since the last renewal by the filesystem's clock (inf if there is no lease)."""
        mtime = None
        for p in (self.beat, self.path):
            if p is None:
                continue
            try:
                mtime = p.stat().st_mtime
                break
            except FileNotFoundError:
                continue
        if mtime is None:
            return float("inf")
        return (fs_now(self.path.parent) if now is None else now) - mtime

    def break_(self, keep: bool = False) -> bool:
        """Rename the lease away; True for the one caller whose rename won. `keep` leaves the
        broken lease beside it (`<name>.broken.<hex>`) as a record of who held it."""
        grave = self.path.with_name(f"{self.path.name}.broken.{secrets.token_hex(4)}")
        try:
            os.rename(self.path, grave)
        except FileNotFoundError:
            return False
        if not keep:
            _unlink(grave)
        return True

    def break_if_expired(self, ttl: float, keep: bool = False) -> bool:
        """Break the lease if it was not renewed within `ttl` seconds; True if this caller did."""
        try:
            age = self.age()
        except OSError:
            return False
        return age > ttl and age != float("inf") and self.break_(keep)

    def release(self, token: str | None = None, key: str = "token") -> bool:
        """Remove the lease (only if it holds `token`, when one is given); True if removed."""
        if token is not None:
            current = self.holder()
            if current is not None and current.get(key) != token:
                return False  # another holder's now (ours was broken): never touched
            grave = self.path.with_name(f"{self.path.name}.release.{secrets.token_hex(4)}")
            try:
                os.rename(self.path, grave)
            except FileNotFoundError:
                return False
            h = read_json_or_none(grave)
            if h is None or h.get(key) != token:
                try:
                    os.link(grave, self.path)  # restore the other holder's lease (fails if re-taken)
                except OSError:
                    pass
                _unlink(grave)
                return False
            _unlink(grave)
        else:
            _unlink(self.path)
        if self.beat is not None:
            _unlink(self.beat)
        return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
