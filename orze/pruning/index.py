"""Which runs a run is judged against, and the index of recorded runs' curves.

Comparable runs share the values of `pruning.comparable_by` (the epoch count and the scheduler at
least, so a short cosine run is never judged against a long one; by default the backbone too).
`comparable_key` is that tuple; `row_curve` reads a leaderboard row's `curve` (the ranked metric
per epoch, written by the daemon when it records a run) and, for a pruned row, cuts it at the
epoch the pruner judged, so a pruned run counts where it was stopped, as Optuna counts a pruned
trial. `CurveIndex` folds rows in one at a time (the daemon feeds it its incremental leaderboard
tail): no per-epoch scan of run directories, and every node sees every node's recorded runs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

from orze.pruning.rules import Curve
from orze.vocab import RunStatus


def comparable_key(config: dict[str, Any], keys: Iterable[str]) -> str:
    return json.dumps([config.get(k) for k in keys], sort_keys=True, default=str)


def row_curve(row: dict[str, Any]) -> Curve | None:
    """The curve a recorded row contributes, or None (failed, misconfigured, or no curve)."""
    status = row.get("status")
    values = row.get("curve")
    if status not in (RunStatus.DONE, RunStatus.PRUNED) or not isinstance(values, list) or not values:
        return None
    if status == RunStatus.PRUNED:
        judged = (row.get("pruned") or {}).get("epoch") if isinstance(row.get("pruned"), dict) else None
        if isinstance(judged, int) and judged >= 1:
            values = values[:judged]
    return Curve(tuple(values), completed=status == RunStatus.DONE)


class CurveIndex:
    """Recorded runs' curves grouped by comparability key."""

    def __init__(self, keys: list[str]):
        self.keys = list(keys)
        self.groups: dict[str, list[Curve]] = defaultdict(list)
        self.seen: set[str] = set()

    def add(self, row: dict[str, Any]) -> None:
        rid = str(row.get("id"))
        curve = row_curve(row)
        if curve is None or rid in self.seen or not isinstance(row.get("config"), dict):
            return
        self.seen.add(rid)
        self.groups[comparable_key(row["config"], self.keys)].append(curve)

    def comparable(self, config: dict[str, Any]) -> list[Curve]:
        return self.groups.get(comparable_key(config, self.keys), [])
