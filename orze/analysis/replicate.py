"""Replicate ideas: the top-K distinct configurations (by validation metric, seeds ignored) with S
new seeds each, as ideas for runs/inbox. Pure: builds and checks the ideas; the CLI submits them.

Each idea is the original run's canonical configuration with a new `seed` (the seed is part of the
fingerprint, so a replicate is a new experiment), `source: replicate` and `parent: <original run id>`.
Every idea is checked with orze.space.check_idea against the current space before it is returned.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from orze.analysis.frame import AnalysisError
from orze.space import check_idea
from orze.space.schema import Space
from orze.store.leaderboard import ranked

SEED = "seed"
MAX_SEED = 2**31 - 1


def base_key(config: dict[str, Any]) -> str:
    """Identity of a configuration apart from its seed."""
    rest = {k: v for k, v in sorted((config or {}).items()) if k != SEED}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, default=str).encode()).hexdigest()


def replicate_ideas(rows: list[dict[str, Any]], space: Space, top: int, seeds: int,
                    rng_seed: int | None = None) -> list[dict[str, Any]]:
    """Ideas replicating the `top` best distinct configurations `seeds` times each with seeds not
    used before by that configuration. Raises AnalysisError with every problem found."""
    if top < 1 or seeds < 1:
        raise AnalysisError(f"--top and --seeds must be at least 1 (got {top} and {seeds})")
    best = ranked(rows)
    if not best:
        raise AnalysisError("no finished runs with a numeric metric to replicate")
    used: dict[str, set[int]] = {}
    for r in rows:
        cfg = r.get("config") or {}
        if isinstance(cfg.get(SEED), int):
            used.setdefault(base_key(cfg), set()).add(cfg[SEED])
    rng = np.random.default_rng(rng_seed)
    picked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in best:
        key = base_key(r.get("config") or {})
        if key in seen or not r.get("config"):
            continue
        seen.add(key)
        picked.append(r)
        if len(picked) == top:
            break
    ideas, errors = [], []
    for r in picked:
        taken = used.get(base_key(r["config"]), set())
        new: list[int] = []
        while len(new) < seeds:
            s = int(rng.integers(1, MAX_SEED))
            if s not in taken and s not in new:
                new.append(s)
        for s in new:
            idea = {**r["config"], SEED: s, "idea_name": f"replicate of {r['id']} (seed {s})",
                    "parent": str(r["id"]), "source": "replicate",
                    "rationale": f"noise floor: re-run of {r['id']} (metric {r['metric']:.4f}) with a new seed"}
            check = check_idea(space, idea)
            if not check.ok:
                errors.append(f"run {r['id']}: " + "; ".join(check.errors))
                break
            ideas.append(idea)
    if errors:
        raise AnalysisError("cannot replicate (the configuration no longer fits configs/space.yaml):\n"
                            + "\n".join(errors))
    return ideas
