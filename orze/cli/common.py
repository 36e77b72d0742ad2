"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from orze.layout import Layout

console = Console()
err_console = Console(stderr=True)

RootOption = typer.Option(None, "--root", "-r", envvar="ORZE_ROOT",
                          help="Research directory (default: the current directory).")


def layout_for(root: Optional[Path]) -> Layout:
    return Layout.at(root)


def fail(message: str, code: int = 2) -> "typer.Exit":
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
