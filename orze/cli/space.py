"""`orze space`: the dimensions of configs/space.yaml and the discrete cell count."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from orze.cli.common import RootOption, console, fail, layout_for
from orze.space import SpaceError, load_space


def register(app: typer.Typer) -> None:
    @app.command("space")
    def space_cmd(root: Optional[Path] = RootOption,
                  as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Show the configuration space and its number of discrete cells."""
        layout = layout_for(root)
        try:
            space = load_space(layout.space_config)
        except SpaceError as e:
            raise fail(str(e))
        if as_json:
            console.print_json(json.dumps({
                "cardinality": space.cardinality(),
                "dimensions": {n: d.model_dump(exclude={"name"}) for n, d in space.dimensions.items()},
            }))
            return
        table = Table(title=f"Configuration space ({layout.space_config})")
        for col in ("dimension", "type", "allowed", "default", "applies when", "group"):
            table.add_column(col)
        for n, d in space.dimensions.items():
            when = ", ".join(f"{k}={v if isinstance(v, str) else '|'.join(map(str, v))}"
                             for k, v in (d.when or {}).items())
            allowed = d.describe_allowed() + (" (log)" if d.log else "")
            table.add_row(n, d.type, allowed, str(d.default), when, d.group)
        console.print(table)
        console.print(f"Discrete cells: [bold]{space.cardinality():,}[/]")
