"""Which runs a run is judged against, and the index of recorded runs' curves.

Comparable runs share the values of `pruning.comparable_by` (the epoch count and the scheduler at
least, so a short cosine run is never judged against a long one; by default the backbone too).
`comparable_key` is that tuple; `row_curve` reads a leaderboard row's `curve` (the ranked metric
per epoch, written by the daemon when it records a run) and, for a pruned row, cuts it at the
epoch the pruner judged, so a pruned run counts where it was stopped, as Optuna counts a pruned
trial. `CurveIndex` folds rows in one at a time (the daemon feeds it its incremental leaderboard
tail): no per-epoch scan of run directories, and every node sees every node's recorded runs.

Runs still in flight, on this node or another, count too, as Optuna counts a running trial's
intermediate values: `progress(run_id, key, epoch, value)` extends a running run's curve (each
node's pruner publishes its runs' epochs to runs/nodes/<node>/curves.jsonl and reads the other
nodes' files incrementally). An in-flight curve is not completed, so the median rule, which
compares with completed runs only, never reads it; successive halving does. Once a run is
recorded its row's curve replaces the in-flight one.
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
        self.inflight: dict[str, tuple[str, tuple[Any, ...]]] = {}   # run id -> (key, values so far)

    def key(self, config: dict[str, Any]) -> str:
        return comparable_key(config, self.keys)

    def add(self, row: dict[str, Any]) -> None:
        rid = str(row.get("id"))
        self.inflight.pop(rid, None)    # recorded (whatever its status): its row is what counts now
        if rid in self.seen:            # readers keep the first row per id
            return
        self.seen.add(rid)
        curve = row_curve(row)
        if curve is not None and isinstance(row.get("config"), dict):
            self.groups[self.key(row["config"])].append(curve)

    def progress(self, run_id: str, key: str, epoch: int, value: Any) -> None:
        """A running run finished `epoch` (1 restarts its curve: a new execution of the run)."""
        if run_id in self.seen:
            return
        values = () if epoch == 1 else self.inflight.get(run_id, ("", ()))[1]
        if epoch == len(values) + 1:
            self.inflight[run_id] = (key, values + (value,))

    def comparable(self, config: dict[str, Any], exclude: str | None = None) -> list[Curve]:
        """Recorded comparable curves, then in-flight ones (not completed), never `exclude`'s."""
        key = self.key(config)
        running = [Curve(v, completed=False) for rid, (k, v) in self.inflight.items() if k == key and rid != exclude]
        return self.groups.get(key, []) + running
