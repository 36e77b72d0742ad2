"""Run ids: sortable by creation time, path-safe, and with 60 random bits so they never collide
(the reference orchestrator's 6-hex ids did)."""

from __future__ import annotations

import re
import secrets
import time

ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{15}$")


def new_id(now: float | None = None) -> str:
    t = time.gmtime(time.time() if now is None else now)
    return time.strftime("%Y%m%dT%H%M%S", t) + "-" + secrets.token_hex(8)[:15]


def is_valid_id(text: str) -> bool:
    return bool(ID_PATTERN.match(text))
