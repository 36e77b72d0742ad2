"""Per-epoch progress and the pruner's verdicts: the worker's side of the file protocol
(docs/pruning.md), the same for the built-in worker and a custom one (which may use this class).

After each epoch the worker appends one JSON line to runs/exp/<id>/progress.jsonl (the epoch's
history entry: `epoch` and the metric's history key at least), then looks for
runs/exp/<id>/prune.json, the daemon's stop request. When it is there the worker stops at this
epoch boundary and finishes as usual over the epochs it completed (selection, test evaluation,
metrics.json), with `pruned` in metrics.json saying after which epoch it stopped.

So that a stop lands at the epoch it was judged at rather than one epoch later, the daemon keeps
runs/exp/<id>/judged.json up to date while it judges a run: `{"epoch": <last epoch judged>,
"next": <next epoch its rule could prune at>, "await_s": <bound>}`. At an epoch at or after
`next`, the worker waits (at most `await_s`) until the verdict on this epoch is in: judged.json
has reached it, or prune.json appeared. No judged.json (pruning off, a `prune: never` idea, a
daemon too old to judge) means no wait. A verdict that comes after the wait lands at the next
boundary, as without waiting. `notify` is called after each progress line (a warm worker tells
its daemon on the event pipe, so the daemon judges at once instead of at its next pass).

Progress lines are appended without fsync: they are advisory (the final history in metrics.json
is what is recorded), and a lost line only delays a decision.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from orze.layout import RUN_JUDGED, RUN_PROGRESS, RUN_PRUNE
from orze.store.atomic import append_line, read_json_or_none

POLL_S = 0.01


class ProgressReporter:
    def __init__(self, run_dir: Path, notify: Callable[[int], None] | None = None):
        self.progress = Path(run_dir) / RUN_PROGRESS
        self.request_path = Path(run_dir) / RUN_PRUNE
        self.judged_path = Path(run_dir) / RUN_JUDGED
        self.notify = notify
        self.stopped_after: int | None = None
        self.request: dict[str, Any] | None = None
        self.waited_s = 0.0          # at epoch boundaries, for verdicts
        self.late: list[int] = []    # epochs whose verdict did not come within await_s

    def epoch(self, entry: dict[str, Any], last: bool = False) -> bool:
        """Report one finished epoch's history entry; True if the run should stop now. `last`:
        the schedule's final epoch (no verdict is awaited: stopping there saves nothing)."""
        epoch = int(entry["epoch"])
        append_line(self.progress, (json.dumps(entry, default=float) + "\n").encode(), durable=False)
        if self.notify is not None:
            self.notify(epoch)
        if not last:
            self._await_verdict(epoch)
        if self.request_path.exists():
            self.request = read_json_or_none(self.request_path) or {}
            self.stopped_after = epoch
            return True
        return False

    def _await_verdict(self, epoch: int) -> None:
        judged = self._judged()
        if judged is None or epoch < judged["next"] or judged["await_s"] <= 0:
            return
        t0 = time.monotonic()
        deadline = t0 + judged["await_s"]
        while not self.request_path.exists():
            if judged is not None and judged["epoch"] >= epoch:
                break
            if time.monotonic() >= deadline:
                self.late.append(epoch)
                break
            time.sleep(POLL_S)
            judged = self._judged()
        self.waited_s += time.monotonic() - t0

    def _judged(self) -> dict[str, Any] | None:
        raw = read_json_or_none(self.judged_path)
        if not isinstance(raw, dict):
            return None
        try:
            return {"epoch": int(raw["epoch"]), "next": int(raw["next"]), "await_s": float(raw["await_s"])}
        except (KeyError, TypeError, ValueError):
            return None   # not ours to trust: never wait on a file we cannot read

    def summary(self) -> dict[str, Any]:
        """What metrics.json says about pruning: `pruned` is null for a run that ran its course.
        (The time spent awaiting verdicts, `waited_s`, goes into metrics.json's timings.)"""
        if self.stopped_after is None:
            return {"pruned": None}
        return {"pruned": {"stopped_after_epoch": self.stopped_after, "request": self.request}}
