"""The daemon's pruner: reads its running runs' per-epoch progress, judges each new epoch against
the comparable recorded runs, and asks a hopeless run to stop (docs/pruning.md).

Polled once per loop pass (`tick`). What it reads, and why it needs no scan of run directories:
- recorded runs' curves from the leaderboard, through its own incremental tail (only new bytes
  each pass), folded into an orze.pruning.index.CurveIndex: runs recorded by every node;
- each running run's runs/exp/<id>/progress.jsonl, from where it last stopped reading (one
  read of the new bytes per pass); each new epoch is also appended to this node's
  runs/nodes/<node>/curves.jsonl, so that
- other nodes' running runs count too: their curves.jsonl files, read incrementally at most
  every FEED_REFRESH_S (the directory listing of runs/nodes/ finds new nodes).
The decision is orze.pruning.rules.decide, applied to each new epoch in order. A stop request is
runs/exp/<id>/prune.json (written atomically) plus one `prune_requested` event; the worker stops
at its next epoch boundary and the run is recorded `pruned` (orze.daemon.outcome). Any other
verdict updates runs/exp/<id>/judged.json (the last epoch judged, the next one the rule could
prune at, `await_verdict_s`), which the built-in worker awaits at such an epoch so that a stop
lands at the epoch judged (orze.worker.progress). A warm worker's event pipe wakes the daemon
after each epoch; a cold run of the built-in worker is looked at every COLD_POLL_S while it is
judged; a custom command's progress is read at each pass (at least once a second). Runs an idea
marks `prune: never`, and replicates, are never judged. Anything unreadable is skipped and
logged: the pruner can only ever fail to stop a run, never stop the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from orze.config import ConfigError, ProjectConfig
from orze.daemon.expect import run_context
from orze.layout import NODE_CURVES, RUN_JUDGED, RUN_PROGRESS, RUN_PRUNE, Layout
from orze.pruning.index import CurveIndex
from orze.pruning.rules import decide, next_judgeable, protected
from orze.space import Space
from orze.store.atomic import append_line, atomic_write_json
from orze.store.jsonl_tail import LineTail
from orze.store.leaderboard import Tail
from orze.vocab import EventKind

log = logging.getLogger(__name__)
COLD_POLL_S = 0.1   # how often a judged run without an event pipe is looked at
FEED_REFRESH_S = 1.0   # how often other nodes' running curves are read


@dataclass
class Watched:
    tail: LineTail
    key: str
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
        self.feed = layout.node_curves(node)
        if self.settings.enabled:
            try:
                self.feed.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:   # publishing fails later and says so; judging works without it
                log.warning("cannot create %s: %s", self.feed.parent, e)
        self.feeds: dict[str, LineTail] = {}      # other nodes' curves.jsonl
        self._next_feeds = 0.0

    def tick(self, running: Iterable[Any]) -> None:
        if not self.settings.enabled:
            return
        try:
            for row in self.tail.new_rows():
                self.index.add(row)
            self._read_feeds()
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
            w = self.watched[r.entry.id] = Watched(LineTail(r.run_dir / RUN_PROGRESS), self.index.key(r.entry.config),
                                                   skip=protected(r.entry.meta))
        if w.requested or w.skip:
            return
        if self._read(r, w):
            comparable = self.index.comparable(r.entry.config, exclude=r.entry.id)
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
        """Read progress lines appended since the last look; True if there are new epochs. Each
        new epoch also goes to this node's curves.jsonl and into the index as in flight."""
        entries = w.tail.new()
        if w.tail.restarted:   # the file was replaced: a new execution of the run
            w.curve, w.judged, w.announced = [], 0, -1
        before = len(w.curve)
        lines = []
        for entry in entries:
            if entry.get("epoch") == len(w.curve) + 1:
                value = entry.get(self.spec.history_key)
                w.curve.append(value)
                self.index.progress(r.entry.id, w.key, len(w.curve), value)
                lines.append(json.dumps({"id": r.entry.id, "key": w.key, "epoch": len(w.curve), "value": value},
                                        default=str) + "\n")
        if lines:
            try:
                append_line(self.feed, "".join(lines).encode(), durable=False)
            except OSError as e:   # others judge without these epochs; this node's decisions stand
                log.warning("could not publish running curves to %s: %s", self.feed, e)
        return len(w.curve) > before

    def _read_feeds(self) -> None:
        """Other nodes' running runs' epochs, at most every FEED_REFRESH_S."""
        now = time.monotonic()
        if now < self._next_feeds:
            return
        self._next_feeds = now + FEED_REFRESH_S
        try:
            nodes = [e.name for e in os.scandir(self.layout.nodes) if e.is_dir() and e.name != self.node]
        except FileNotFoundError:
            nodes = []
        for node in nodes:
            tail = self.feeds.setdefault(node, LineTail(self.layout.nodes / node / NODE_CURVES))
            for line in tail.new():
                try:
                    self.index.progress(str(line["id"]), str(line["key"]), int(line["epoch"]), line.get("value"))
                except (KeyError, TypeError, ValueError):
                    continue

    def _request(self, r, w: Watched, verdict) -> None:
        request = {**verdict.as_dict(), "rule": self.settings.rule, "node": self.node, "at": time.time(),
                   "metric": self.spec.history_key}
        atomic_write_json(r.run_dir / RUN_PRUNE, request)
        w.requested = True
        self.requests += 1
        self.emit(EventKind.PRUNE_REQUESTED, id=r.entry.id, node=self.node, epoch=verdict.epoch,
                  rule=self.settings.rule, reason=verdict.reason)
