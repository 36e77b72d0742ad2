"""`orze submit FILE|-`: a human's idea(s), through the same admission path as an agent's."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from orze.cli.common import RootOption, console, fail, layout_for
from orze.config import ConfigError, load_project
from orze.safe_text import printable
from orze.space import SpaceError, load_space
from orze.store.inbox import submit_text


def register(app: typer.Typer) -> None:
    @app.command("submit")
    def submit_cmd(
        source: str = typer.Argument(..., help="An idea file (YAML: one idea or a list), or - for stdin."),
        root: Optional[Path] = RootOption,
        admit: bool = typer.Option(True, "--admit/--no-admit",
                                   help="Admit at once and report (default), or only drop it in the inbox."),
    ) -> None:
        """Submit ideas. They are validated, fingerprinted and queued like any agent's."""
        from orze.daemon.admission import AdmissionReport, Admitter

        layout = layout_for(root)
        try:
            project = load_project(layout)
            space = load_space(layout.space_config)
        except (ConfigError, SpaceError) as e:
            raise fail(str(e))
        limit = project.admission.max_file_bytes
        # Bounded read (a file, a pipe or stdin): what admission would refuse is refused here, clearly.
        try:
            if source == "-":
                text = sys.stdin.read(limit + 1)
            else:
                with open(source, encoding="utf-8", errors="replace") as f:
                    text = f.read(limit + 1)
        except OSError as e:
            raise fail(f"cannot read {escape(printable(source))}: {e.strerror or e}")
        if len(text.encode("utf-8", "surrogateescape")) > limit:
            raise fail(f"{escape(printable(source))}: larger than admission.max_file_bytes ({limit} bytes)")
        layout.ensure()
        path = submit_text(layout, text, "human")
        if not admit:
            console.print(f"queued for admission: {path}")
            return
        admitter = Admitter(layout, space, project.admission, f"submit-{socket.gethostname()}")
        taken = admitter.take_one(path)
        if taken is None:
            console.print(f"a running daemon took {escape(path.name)} and will admit it")
            return
        report = AdmissionReport()
        admitter.admit_file(taken, report)
        for run_id in report.admitted:
            console.print(f"[green]admitted[/] {run_id}")
        for m in report.messages:
            console.print(f"[yellow]{escape(printable(m))}[/]", highlight=False)
        console.print(f"{len(report.admitted)} admitted, {report.rejected} rejected, "
                      f"{report.duplicates} duplicate(s) refused")
        if not report.admitted:
            raise typer.Exit(1)
