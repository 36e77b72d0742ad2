"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from orze.layout import Layout

# Piped output (logs, CI, `| less`) gets a wide fixed width instead of wrapping at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True)

RootOption = typer.Option(None, "--root", "-r", envvar="ORZE_ROOT",
                          help="Research directory (default: the current directory).")


def layout_for(root: Optional[Path]) -> Layout:
    return Layout.at(root)


def fail(message: str, code: int = 2) -> "typer.Exit":
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
