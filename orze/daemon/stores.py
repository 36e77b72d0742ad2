"""Which feature stores an idea needs, and whether they exist (admission's store check).

`missing_store_reason` is pure (the idea's configuration and the set of existing stores); the
only I/O, `existing_stores`, lists features/<backbone>/ directories holding a meta.json (a store's
last-written file, so a store with one is complete; see orze.features.store).
"""

from __future__ import annotations

from typing import Any

from orze.layout import STORE_META, Layout


def needed_backbones(config: dict[str, Any]) -> list[str]:
    """The backbone, or every fused backbone, an idea trains on."""
    b = config.get("backbone")
    return [str(x) for x in b] if isinstance(b, list) else ([str(b)] if b is not None else [])


def missing_store_reason(config: dict[str, Any], existing: set[str]) -> str | None:
    """None when every backbone the idea needs has a feature store; else the reason, naming the
    missing backbone(s) and the stores that exist."""
    missing = [b for b in needed_backbones(config) if b not in existing]
    if not missing:
        return None
    have = ", ".join(sorted(existing)) or "none"
    return (f"backbone: no feature store for {', '.join(missing)} (features/<backbone>/meta.json); "
            f"stores that exist: {have}")


def existing_stores(layout: Layout) -> set[str]:
    try:
        return {p.name for p in layout.features.iterdir() if (p / STORE_META).is_file()}
    except (FileNotFoundError, NotADirectoryError):
        return set()
