"""`orze init [DIR]`: a research directory with the default configs/, prompts/, features/, runs/."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from orze.cli.common import console, fail
from orze.defaults import DEFAULT_FILES, defaults_root
from orze.layout import Layout


def init_directory(target: Path, force: bool = False) -> list[str]:
    src = defaults_root()
    written = []
    for rel in DEFAULT_FILES:
        s, d = src / rel, target / rel
        if not s.exists():
            continue
        if d.exists() and (not force or d.resolve() == s.resolve()):
            continue
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s, d)
        written.append(rel)
    Layout.at(target).ensure()
    return written


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init_cmd(directory: Path = typer.Argument(Path("."), help="Research directory to create."),
                 force: bool = typer.Option(False, "--force", help="Overwrite existing config files.")) -> None:
        """Create a research directory with the default configuration space, prompts and layout."""
        try:
            written = init_directory(directory.resolve(), force)
        except OSError as e:
            raise fail(f"cannot initialise {directory}: {e}")
        for rel in written:
            console.print(f"  wrote {directory / rel}")
        console.print(f"[green]Research directory ready:[/] {directory.resolve()}"
                      + ("" if written else " (existing files kept; --force overwrites)"))
