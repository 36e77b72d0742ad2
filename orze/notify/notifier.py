"""The notifier: one per `orze run`, ticked from the daemon loop; derives events from the shared
files and hands each to the webhooks' background senders exactly once for the whole cluster.

Contract
- `tick()` is cheap and never blocks on the network: at most every `poll_s` it reads what was
  appended to runs/leaderboard.jsonl (a Tail: only new bytes), the node heartbeats
  (runs/nodes/*.json, ages by the filesystem's clock), the agents' states and ledgers, the queue and
  inbox sizes and the free disk space under runs/, and derives events (orze.notify.detect).
- The leaderboard as it was when the notifier started is folded in silently (that history is not
  news); rows appended afterwards produce events. Every node folds the same rows in the same order,
  so all derive the same events with the same keys.
- Exactly one node sends an event: the one whose exclusive create of runs/notify/sent/<key>
  succeeds (O_EXCL, or link() with scheduler.claim_method: link). A node that loses the race, or
  sees the event again later, does nothing.
- Rate limit: at most `max_per_hour` events are sent per hour for the campaign, counted from the
  markers' mtimes (the filesystem's clock); an event over the limit still gets its marker (so no
  other node sends it later) marked suppressed, and is counted in the node's status.
- Delivery happens on one background thread per webhook with retries and backoff
  (orze.notify.deliver). Results go to runs/notify/<node>.json (sent, failed, suppressed, dropped,
  the last failures with their errors), which `orze status` shows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from typing import Any, Callable, Iterable

from orze.layout import Layout
from orze.notify.config import NotifyConfig
from orze.notify.deliver import Outcome, WebhookSender, post_json
from orze.notify.detect import Event, RowEvents, agent_events, cluster_idle, disk_low, node_lost, queue_idle_event
from orze.store.atomic import atomic_write_json, create_exclusive, read_json_files
from orze.store.leaderboard import Tail
from orze.store.lease import fs_now

log = logging.getLogger(__name__)

RECENT_FAILURES = 20
NODE_FRESH_S = 120.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def marker_name(key: str) -> str:
    """A path-safe file name for an event key (keys are built from ids and names, already safe)."""
    return _UNSAFE.sub("_", key)[:200]


def read_heartbeats(layout: Layout) -> list[tuple[dict[str, Any], float]]:
    """(heartbeat, age in seconds by the filesystem's clock) for every node that ever ran."""
    out = []
    try:
        paths = sorted(layout.nodes.glob("*.json"))
    except OSError:
        return out
    if not paths:
        return out
    now = fs_now(layout.nodes)
    for p in paths:
        try:
            hb = json.loads(p.read_text())
            age = now - p.stat().st_mtime
        except (OSError, ValueError):
            continue
        if isinstance(hb, dict):
            out.append((hb, age))
    return out


def read_status(layout: Layout) -> dict[str, dict[str, Any]]:
    """Every node's notification status (runs/notify/<node>.json), for `orze status`."""
    return {p.stem: obj for p, obj in read_json_files(layout.notify)}


class Notifier:
    def __init__(self, layout: Layout, node: str, config: NotifyConfig, *,
                 budgets: dict[str, dict[str, Any]] | None = None, claim_method: str = "excl",
                 post: Callable[..., int] = post_json):
        self.layout, self.node, self.cfg = layout, node, config
        self.budgets = budgets or {}
        self.claim_method = claim_method
        self.campaign = layout.root.name
        self._tail = Tail(layout.leaderboard)
        self._rows = RowEvents(spike_count=config.failure_spike_count,
                               spike_window_s=config.failure_spike_window_min * 60,
                               plateau_runs=config.plateau_runs)
        self._baseline_done = False
        self._last_row_id: str | None = None
        self._idle_since: float | None = None
        self._next = 0.0
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {"node": node, "sent": 0, "failed": 0, "suppressed": 0, "dropped": 0,
                                      "events": 0, "failures": [], "last_sent": None, "errors": []}
        layout.notify_sent.mkdir(parents=True, exist_ok=True)
        self.senders = {w.name: WebhookSender(
            w, campaign=self.campaign, node=node, attempts=config.retry_attempts,
            backoff_s=config.retry_backoff_s, max_backoff_s=config.retry_max_backoff_s,
            max_pending=config.max_pending, on_result=self._on_result, post=post)
            for w in config.webhooks}
        self._write_status()

    # --- the daemon's entry point -----------------------------------------------------------
    def tick(self, now: float | None = None) -> list[Event]:
        """Derive and dispatch what happened since the last look; returns the events this node
        sent (or suppressed). Never raises for a bad file: that is recorded and retried."""
        mono = time.monotonic()
        if mono < self._next:
            return []
        self._next = mono + self.cfg.poll_s
        now = time.time() if now is None else now
        derived: list[Event] = []
        for name, step in (("leaderboard", self._leaderboard), ("nodes", self._nodes),
                           ("agents", self._agents), ("disk", self._disk)):
            try:
                derived.extend(step(now))
            except Exception as e:  # one unreadable source must not silence the others
                self._error(f"{name}: {type(e).__name__}: {e}")
        return self.dispatch(derived)

    def close(self, timeout_s: float = 2.0) -> None:
        """One last look (what the daemon's final runs changed), then give pending messages up to
        `timeout_s` to go out."""
        self._next = 0.0
        try:
            self.tick()
        except Exception as e:
            self._error(f"final tick: {e}")
        for s in self.senders.values():
            s.close(timeout_s)
        self._write_status()

    # --- sources ------------------------------------------------------------------------------
    def _leaderboard(self, now: float) -> list[Event]:
        out: list[Event] = []
        rows = self._tail.new_rows()
        for row in rows:
            evs = self._rows.add(row)
            if self._baseline_done:
                out.extend(evs)
            self._last_row_id = str(row.get("id"))
        self._baseline_done = True
        return out

    def _nodes(self, now: float) -> list[Event]:
        from orze.store import queue

        beats = read_heartbeats(self.layout)
        out = node_lost(beats, self.cfg.node_lost_after_s)
        depth = queue.depth(self.layout)
        try:
            inbox = sum(1 for n in os.listdir(self.layout.inbox) if not n.startswith("."))
        except FileNotFoundError:
            inbox = 0
        if cluster_idle(beats, NODE_FRESH_S, depth, inbox):
            self._idle_since = now if self._idle_since is None else self._idle_since
            idle = now - self._idle_since
            if idle >= self.cfg.queue_idle_after_s:
                slots = sum(len(hb.get("slots") or []) for hb, age in beats
                            if not hb.get("stopped") and age <= NODE_FRESH_S)
                out.append(queue_idle_event(self._last_row_id, idle, slots))
        else:
            self._idle_since = None
        return out

    def _agents(self, now: float) -> list[Event]:
        from orze.agents.host import read_states
        from orze.agents.ledger import summarise

        states = read_states(self.layout)
        totals = {n: t.as_dict() for n, t in summarise(self.layout).items()}
        return agent_events(states, totals, self.budgets)

    def _disk(self, now: float) -> list[Event]:
        usage = shutil.disk_usage(self.layout.runs)
        return disk_low(usage.free, usage.total, self.cfg.disk_min_free_gb, str(self.layout.runs), now)

    # --- dispatch -----------------------------------------------------------------------------
    def dispatch(self, events: Iterable[Event]) -> list[Event]:
        """Claim each event's marker; the winner sends it (or records it suppressed)."""
        handled = []
        for ev in events:
            if ev.kind not in self.cfg.events:
                continue
            path = self.layout.notify_sent / marker_name(ev.key)
            if path.exists():
                continue  # sent (by this node or another) already: the common case, no write
            suppressed = self._recent_sent() >= self.cfg.max_per_hour
            marker = json.dumps({"key": ev.key, "kind": ev.kind, "node": self.node, "at": time.time(),
                                 "suppressed": suppressed}).encode()
            try:
                if not create_exclusive(path, marker, self.claim_method):
                    continue  # another node won: it sends this one
            except OSError as e:
                self._error(f"cannot create {path.name}: {e}")
                continue
            with self._lock:
                self.stats["events"] += 1
                if suppressed:
                    self.stats["suppressed"] += 1
            if not suppressed:
                for name, sender in self.senders.items():
                    if self._webhook(name).wants(ev.kind):
                        sender.submit(ev)
            handled.append(ev)
        if handled:
            self._write_status()
        return handled

    def _webhook(self, name: str):
        return next(w for w in self.cfg.webhooks if w.name == name)

    def _recent_sent(self) -> int:
        """Events sent in the last hour, campaign-wide (markers not marked suppressed)."""
        d = self.layout.notify_sent
        cutoff = fs_now(d) - 3600.0
        n = 0
        with os.scandir(d) as it:
            for e in it:
                try:
                    if e.name.startswith(".") or e.stat().st_mtime < cutoff:
                        continue
                    with open(e.path, "rb") as f:
                        if not json.loads(f.read() or b"{}").get("suppressed"):
                            n += 1
                except (OSError, ValueError):
                    n += 1  # a marker being written: count it (the limit errs on quiet)
        return n

    # --- results and status -------------------------------------------------------------------
    def _on_result(self, o: Outcome) -> None:
        with self._lock:
            if o.ok:
                self.stats["sent"] += 1
                self.stats["last_sent"] = {"at": time.time(), "webhook": o.webhook, "key": o.event.key}
            else:
                self.stats["dropped" if o.attempts == 0 else "failed"] += 1
                self.stats["failures"] = (self.stats["failures"] + [{
                    "at": time.time(), "webhook": o.webhook, "kind": o.event.kind, "key": o.event.key,
                    "attempts": o.attempts, "error": o.error}])[-RECENT_FAILURES:]
        self._write_status()

    def _error(self, message: str) -> None:
        log.warning("notify: %s", message)
        with self._lock:
            self.stats["errors"] = (self.stats["errors"] + [{"at": time.time(), "error": message}])[-RECENT_FAILURES:]
        self._write_status()

    def _write_status(self) -> None:
        with self._lock:
            snap = {**self.stats, "updated_at": time.time(),
                    "pending": sum(s.pending for s in self.senders.values()) if hasattr(self, "senders") else 0,
                    "webhooks": [w.name for w in self.cfg.webhooks]}
            try:
                atomic_write_json(self.layout.notify_status(self.node), snap)
            except OSError as e:
                log.warning("notify: cannot write %s: %s", self.layout.notify_status(self.node), e)


def make_notifier(layout: Layout, node: str, project) -> Notifier | None:
    """The daemon's notifier for this project, or None when no webhook is configured."""
    cfg: NotifyConfig = project.notify
    if not cfg.enabled:
        return None
    budgets = {a.name: {"budget_usd": a.budget_usd, "budget_tokens": a.budget_tokens} for a in project.agents}
    return Notifier(layout, node, cfg, budgets=budgets, claim_method=project.scheduler.claim_method)
