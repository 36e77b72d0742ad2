"""Fingerprint: a stable hash of a canonical configuration (never of name, priority or rationale)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def fingerprint(config: dict[str, Any]) -> str:
    """40 hex characters (160 bits) of SHA-256 over the canonical JSON of the config."""
    return hashlib.sha256(canonical_json(config).encode("ascii")).hexdigest()[:40]
