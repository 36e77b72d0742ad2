"""What the daemon shows: a live rich panel on a terminal; one plain line per event otherwise
(so logs and CI output stay readable and a non-terminal stays quiet between events)."""

from __future__ import annotations

import sys
import time
from collections import deque

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text


class Display:
    def __init__(self, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.live_mode = self.console.is_terminal and not quiet
        self.quiet = quiet
        self.lines: deque[str] = deque(maxlen=8)
        self.live: Live | None = None
        self.daemon = None

    def event(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live_mode:
            self.lines.append(f"{stamp} {message}")
            self.refresh()
        elif not self.quiet:
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
            f"misconfigured {c['misconfigured']} · retried {c['retried']} · "
            f"utilisation {snap['utilisation']:.0%} · idle with work queued {snap['waiting_idle_fraction']:.1%}")
        return Group(table, summary, Text("\n".join(self.lines), style="dim"))
