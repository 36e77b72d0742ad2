"""What the daemon shows: a live rich panel on a terminal; one plain line per event otherwise
(so logs and CI output stay readable and a non-terminal stays quiet between events).

It shows two things: the node's events (orze.store.transitions emits one per state change;
`render_event` is the one place that turns an event into a sentence) and log records at or above
the level the user chose (`orze run --log-level`): what was recovered from or degraded. Every
line shown passes through orze.safe_text.printable, so nothing from the inbox reaches the terminal
as a control character.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orze.safe_text import printable
from orze.vocab import EventKind, RunStatus


def render_event(e: dict[str, Any]) -> str | None:
    """The sentence for one event record (None: not shown)."""
    kind, rid = e.get("event"), e.get("id")
    if kind == EventKind.STARTED:
        return f"slot {e.get('slot')}:{e.get('device', '?')}: started {rid} ({e.get('config')}, {e.get('mode')})"
    if kind == EventKind.FINISHED:
        status = e.get("status")
        if status == RunStatus.DONE:
            metric = e.get("metric")
            shown = f"{metric:.4f}" if isinstance(metric, (int, float)) else metric
            return f"{rid}: done {e.get('metric_name') or 'metric'}={shown} in {e.get('duration_s') or 0:.1f}s"
        if status == RunStatus.PRUNED:
            p = e.get("pruned") or {}
            return (f"{rid}: pruned after epoch {p.get('stopped_after_epoch')} of {p.get('epochs_configured')} "
                    f"(~{p.get('saved_s') or 0:.0f}s saved)")
        if status == RunStatus.MISCONFIGURED:
            return f"{rid}: MISCONFIGURED: {'; '.join(e.get('findings') or [])}"
        return f"{rid}: failed ({e.get('error')}): {e.get('message') or ''}"
    if kind == EventKind.PRUNE_REQUESTED:
        return f"{rid}: asked to stop at epoch {e.get('epoch')} ({e.get('rule')}: {e.get('reason')})"
    if kind == EventKind.REQUEUED:
        heal = f" with heal: {e['heal']}" if e.get("heal") else ""
        return f"{rid}: attempt {e.get('attempt')} failed ({e.get('failure')}); re-queued{heal}"
    if kind == EventKind.RELEASED:
        return f"{rid}: released back to the queue ({e.get('reason')})"
    if kind == EventKind.LEASE_LOST:
        return f"{rid}: {e.get('reason')}"
    if kind == EventKind.LEASE_BROKEN:
        return f"{rid}: re-queued ({e.get('reason')})"
    if kind == EventKind.RECORDED_ON_RECOVERY:
        return f"{rid}: result recorded on recovery ({e.get('reason')})"
    if kind == EventKind.REQUEUE_FAILED:
        return f"{rid}: cannot re-queue ({e.get('reason')}); left for `orze status` and a human"
    if kind == EventKind.ADMITTED:
        near = f", near-duplicate of {e['near_duplicate_of']}" if e.get("near_duplicate_of") else ""
        return f"{rid}: admitted from {e.get('source')} ({e.get('priority')}{near})"
    if kind in (EventKind.REJECTED, EventKind.DUPLICATE):
        where = f"{e.get('source')}#{(e.get('index') or 0) + 1}" if e.get("index") is not None else e.get("source")
        if kind == EventKind.DUPLICATE:
            return f"{where}: duplicate of run {e.get('duplicate_of')}"
        return f"{where}: rejected: {'; '.join(e.get('errors') or [])}"
    if kind == EventKind.NODE_STOPPING:
        return (f"stopping ({e.get('reason')}): no new work; running experiments get "
                f"{e.get('grace_s', 0):g}s to finish, then are released")
    if kind == EventKind.STORAGE_FAILING:
        return (f"storage failing ({e.get('part')}: {e.get('error')}): no new work until the shared "
                f"directory is writable again; leases kept, running experiments go on")
    if kind == EventKind.STORAGE_RECOVERED:
        return f"storage writable again after {e.get('after_s', 0):.0f}s: resuming"
    if kind == EventKind.NODE_STARTED:
        return f"node {e.get('node')} started: {len(e.get('slots') or [])} slot(s), {e.get('mode')} workers"
    return None


class _ToDisplay(logging.Handler):
    def __init__(self, display: "Display", level: int):
        super().__init__(level)
        self.display = display

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.line(f"{record.levelname.lower()}: {record.getMessage()}", always=True)
        except Exception:
            self.handleError(record)


class Display:
    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live_mode = self.console.is_terminal and not quiet
        self.quiet = quiet
        self.lines: deque[str] = deque(maxlen=8)
        self.live: Live | None = None
        self.daemon = None

    def event(self, record: dict[str, Any]) -> None:
        text = render_event(record)
        if text is not None:
            self.line(text)

    def capture_logs(self, level: int = logging.WARNING) -> None:
        """Show Orze's log records at or above `level` (until `close`)."""
        self._handler = _ToDisplay(self, level)
        root = logging.getLogger("orze")
        self._saved = (root.level, root.propagate)
        root.addHandler(self._handler)
        root.setLevel(level)
        root.propagate = False   # shown here, not a second time by Python's last-resort handler

    def line(self, message: str, always: bool = False) -> None:
        """Show one line; `always`: also under --quiet (log records at the level asked for)."""
        # Events and log records carry inbox file names and idea text: never let them drive the
        # terminal (escape codes, carriage returns).
        message = printable(message)
        stamp = time.strftime("%H:%M:%S")
        if self.live_mode:
            self.lines.append(f"{stamp} {message}")
            self.refresh()
        elif always or not self.quiet:
            print(f"{stamp} {message}", file=sys.stderr, flush=True)

    def attach(self, daemon) -> None:
        self.daemon = daemon
        if self.live_mode:
            self.live = Live(self.render(), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def close(self) -> None:
        handler = getattr(self, "_handler", None)
        if handler is not None:
            root = logging.getLogger("orze")
            root.removeHandler(handler)
            root.setLevel(self._saved[0])
            root.propagate = self._saved[1]
            self._handler = None
        if self.live is not None:
            self.live.update(self.render())
            self.live.stop()
            self.live = None

    def render(self):
        d = self.daemon
        if d is None:
            return Text("starting…")
        snap = d.snapshot()
        c = snap["counters"]
        table = Table(title=f"orze run · node {snap['node']}" + (" · stopping" if snap["stopping"] else ""),
                      expand=False)
        for col in ("slot", "device", "worker", "run", "for", "jobs", "utilisation"):
            table.add_column(col)
        now = time.time()
        for s in snap["slots"]:
            w = s.get("worker") or {}
            worker = f"warm {w['pid']}" if w.get("pid") else (w.get("mode") or s.get("mode", ""))
            table.add_row(str(s["slot"]), s["device"], worker, s["run"] or "[dim]idle[/]",
                          f"{now - s['since']:.0f}s" if s["since"] else "", str(s.get("jobs", "")),
                          f"{s.get('utilisation', 0):.0%}")
        summary = Text(
            f"admitted {c['admitted']} · rejected {c['rejected']} · duplicates {c['duplicates']} · "
            f"started {c['started']} · done {c['done']} · failed {c['failed']} · "
            f"misconfigured {c['misconfigured']} · pruned {c.get('pruned', 0)} · retried {c['retried']} · "
            f"utilisation {snap['utilisation']:.0%} · idle with work queued {snap['waiting_idle_fraction']:.1%}")
        return Group(table, summary, Text("\n".join(self.lines), style="dim"))
