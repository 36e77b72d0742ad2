"""Per-epoch progress and the pruner's stop request: the worker's side of the file protocol
(docs/pruning.md), the same for the built-in worker and a custom one.

After each epoch the worker appends one JSON line to runs/exp/<id>/progress.jsonl (the epoch's
history entry: `epoch` and the metric's history key at least), then looks for
runs/exp/<id>/prune.json, the daemon's stop request. When it is there the worker stops at this
epoch boundary and finishes as usual over the epochs it completed (selection, test evaluation,
metrics.json), with `pruned` in metrics.json saying after which epoch it stopped.

Progress lines are appended without fsync: they are advisory (the final history in metrics.json
is what is recorded), and a lost line only delays a decision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orze.layout import RUN_PROGRESS, RUN_PRUNE
from orze.store.atomic import append_line, read_json_or_none


class ProgressReporter:
    def __init__(self, run_dir: Path):
        self.progress = Path(run_dir) / RUN_PROGRESS
        self.request_path = Path(run_dir) / RUN_PRUNE
        self.stopped_after: int | None = None
        self.request: dict[str, Any] | None = None

    def epoch(self, entry: dict[str, Any]) -> bool:
        """Report one finished epoch's history entry; True if the run should stop now."""
        append_line(self.progress, (json.dumps(entry, default=float) + "\n").encode(), durable=False)
        if self.request_path.exists():
            self.request = read_json_or_none(self.request_path) or {}
            self.stopped_after = int(entry["epoch"])
            return True
        return False

    def summary(self) -> dict[str, Any]:
        """What metrics.json says about pruning: `pruned` is null for a run that ran its course."""
        if self.stopped_after is None:
            return {"pruned": None}
        return {"pruned": {"stopped_after_epoch": self.stopped_after, "request": self.request}}
