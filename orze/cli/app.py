"""Assembles the `orze` CLI from one module per command (each exposes `register(app)`)."""

from __future__ import annotations

import importlib

import typer

from orze.store.permissions import restrict_umask

app = typer.Typer(
    name="orze",
    help="Orze: an orchestrator for autonomous ML research campaigns.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root() -> None:
    """Orze: an orchestrator for autonomous ML research campaigns."""
    restrict_umask()  # nothing Orze writes is world-readable, whatever the user's umask


# Each entry is a module under orze.cli with a `register(app)` function.
COMMAND_MODULES = [
    "init",
    "run",
    "submit",
    "leaderboard",
    "predict",
    "status",
    "space",
    "demo",
    "features",
    "analyze",
    "agent",
    "slurm",
    "dashboard",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"orze.cli.{_name}").register(app)


def main() -> None:
    app()
