"""The daemon's pruner: reads its running runs' per-epoch progress, judges each new epoch against
the comparable recorded runs, and asks a hopeless run to stop (docs/pruning.md).

Polled once per loop pass (`tick`). What it reads, and why it needs no scan of run directories:
- recorded runs' curves from the leaderboard, through its own incremental tail (only new bytes
  each pass), folded into an orze.pruning.index.CurveIndex: runs recorded by every node;
- each running run's runs/exp/<id>/progress.jsonl, from where it last stopped reading (a stat
  per pass, a read when it grew).
The decision is orze.pruning.rules.decide, applied to each new epoch in order. A stop request is
runs/exp/<id>/prune.json (written atomically) plus one `prune_requested` event; the worker stops
at its next epoch boundary and the run is recorded `pruned` (orze.daemon.outcome). Any other
verdict updates runs/exp/<id>/judged.json (the last epoch judged, the next one the rule could
prune at, `await_verdict_s`), which the built-in worker awaits at such an epoch so that a stop
lands at the epoch judged (orze.worker.progress). A warm worker's event pipe wakes the daemon
after each epoch; a cold run is looked at every COLD_POLL_S while it is judged (`poll_s`). Runs an idea
marks `prune: never`, and replicates, are never judged. Anything unreadable is skipped and
logged: the pruner can only ever fail to stop a run, never stop the daemon.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from orze.config import ConfigError, ProjectConfig
from orze.daemon.expect import run_context
from orze.layout import RUN_JUDGED, RUN_PROGRESS, RUN_PRUNE, Layout
from orze.pruning.index import CurveIndex
from orze.pruning.rules import decide, next_judgeable, protected
from orze.space import Space
from orze.store.atomic import atomic_write_json
from orze.store.leaderboard import Tail
from orze.vocab import EventKind

log = logging.getLogger(__name__)
COLD_POLL_S = 0.1   # how often a judged run without an event pipe is looked at


@dataclass
class Watched:
    offset: int = 0
    curve: list[Any] = field(default_factory=list)
    judged: int = 0            # epochs already judged
    announced: int = -1        # the judged epoch judged.json says
    requested: bool = False
    skip: str | None = None    # why this run is never judged


def check_keys(project: ProjectConfig, space: Space, where: str) -> list[str]:
    """The comparability keys for this space. A `pruning.comparable_by` the project sets must name
    dimensions of the space (ConfigError otherwise); the default keeps those the space has (a
    custom task's space may have no `scheduler`)."""
    keys = project.pruning.comparable_by
    unknown = [k for k in keys if k not in space.dimensions]
    if unknown and "comparable_by" in project.pruning.model_fields_set:
        raise ConfigError(f"{where}: pruning.comparable_by: {', '.join(map(repr, unknown))} "
                          f"not a dimension of configs/space.yaml; allowed: {', '.join(space.dimensions)}")
    if unknown:
        log.info("pruning compares runs by %s (the space has no %s)",
                 ", ".join(k for k in keys if k not in unknown) or "nothing", ", ".join(unknown))
    return [k for k in keys if k not in unknown]


class Pruner:
    def __init__(self, layout: Layout, project: ProjectConfig, space: Space, emit, node: str):
        keys = check_keys(project, space, str(layout.project_config))
        self.layout, self.settings, self.emit, self.node = layout, project.pruning, emit, node
        self.spec = run_context(project)[1]
        self.tail = Tail(layout.leaderboard)
        self.index = CurveIndex(keys)
        self.watched: dict[str, Watched] = {}
        self.requests = 0

    def tick(self, running: Iterable[Any]) -> None:
        if not self.settings.enabled:
            return
        try:
            for row in self.tail.new_rows():
                self.index.add(row)
            live = set()
            for r in running:
                live.add(r.entry.id)
                self._judge(r)
            for gone in set(self.watched) - live:
                del self.watched[gone]
        except Exception:  # the pruner may fail to prune, never take the daemon down
            log.exception("pruner failed this pass; the daemon goes on")

    def _judge(self, r) -> None:
        w = self.watched.get(r.entry.id)
        if w is None:
            w = self.watched[r.entry.id] = Watched(skip=protected(r.entry.meta))
        if w.requested or w.skip:
            return
        if self._read(r, w):
            comparable = self.index.comparable(r.entry.config)
            for epoch in range(w.judged + 1, len(w.curve) + 1):
                verdict = decide(w.curve[:epoch], comparable, self.settings, self.spec.direction)
                w.judged = epoch
                if verdict.prune:
                    self._request(r, w, verdict)
                    return
        if w.announced != w.judged:
            self._announce(r, w)

    def judging(self) -> bool:
        """Whether some run is being judged (and so may be awaiting a verdict)."""
        return self.settings.enabled and any(not w.requested and not w.skip for w in self.watched.values())

    def _announce(self, r, w: Watched) -> None:
        """Tell the worker the verdicts so far: no stop up to `epoch`, none possible before `next`."""
        atomic_write_json(r.run_dir / RUN_JUDGED, {
            "epoch": w.judged, "next": next_judgeable(self.settings, w.judged),
            "await_s": self.settings.await_verdict_s}, durable=False)
        w.announced = w.judged

    def _read(self, r, w: Watched) -> bool:
        """Read progress lines appended since the last look; True if there are new epochs."""
        path = r.run_dir / RUN_PROGRESS
        try:
            with open(path, "rb") as f:
                f.seek(w.offset)
                data = f.read()
        except FileNotFoundError:
            return False
        end = data.rfind(b"\n") + 1   # a line still being written waits for the next pass
        before = len(w.curve)
        for raw in data[:end].splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                log.warning("%s: skipped a progress line that is not JSON", path)
                continue
            if isinstance(entry, dict) and entry.get("epoch") == len(w.curve) + 1:
                w.curve.append(entry.get(self.spec.history_key))
        w.offset += end
        return len(w.curve) > before

    def _request(self, r, w: Watched, verdict) -> None:
        request = {**verdict.as_dict(), "rule": self.settings.rule, "node": self.node, "at": time.time(),
                   "metric": self.spec.history_key}
        atomic_write_json(r.run_dir / RUN_PRUNE, request)
        w.requested = True
        self.requests += 1
        self.emit(EventKind.PRUNE_REQUESTED, id=r.entry.id, node=self.node, epoch=verdict.epoch,
                  rule=self.settings.rule, reason=verdict.reason)
