"""Submitting ideas: one new file per submission in runs/inbox/, written to a temp name in the
same directory and renamed into place, so a daemon never reads a half-written idea file and no
file that others append to is ever rewritten."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

import yaml

from orze.layout import Layout


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:40].strip("-") or "ideas"


def submit_ideas(layout: Layout, ideas: list[dict[str, Any]], origin: str = "human") -> Path:
    """Write `ideas` as one YAML file into the inbox; returns its final path."""
    text = yaml.safe_dump(ideas, sort_keys=False, allow_unicode=True)
    return submit_text(layout, text, origin)


def submit_text(layout: Layout, text: str, origin: str = "human") -> Path:
    layout.inbox.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"{stamp}-{_slug(origin)}-{secrets.token_hex(5)}.yaml"
    tmp = layout.inbox / f".{name}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    final = layout.inbox / name
    os.rename(tmp, final)
    return final
