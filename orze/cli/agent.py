"""`orze agent NAME`: run one configured agent in the foreground (what `orze run` hosts)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, console, fail, layout_for

# Exit status for a configuration problem the agent cannot fix by retrying (sysexits EX_CONFIG):
# the host does not restart an agent that exits with it.
EXIT_CONFIG = 78


def register(app: typer.Typer) -> None:
    @app.command("agent")
    def agent_cmd(name: str = typer.Argument(..., help="An agent named under `agents:` in configs/orze.yaml."),
                  root: Optional[Path] = RootOption,
                  cycles: Optional[int] = typer.Option(None, "--cycles", "-n", min=1,
                                                       help="Stop after this many proposing cycles."),
                  once: bool = typer.Option(False, "--once", help="One cycle, then exit.")) -> None:
        """Run one research agent in the foreground until its budget or --cycles is reached."""
        from orze.agents.host import LEASE_ENV, holds, lease_path
        from orze.agents.keys import MissingKeyError, redact
        from orze.agents.loop import AgentLoop
        from orze.agents.policies import make_policy
        from orze.config import ConfigError, load_project

        layout = layout_for(root)
        try:
            project = load_project(layout)
        except ConfigError as e:
            raise fail(str(e), EXIT_CONFIG)
        specs = {s.name: s for s in project.agents}
        if name not in specs:
            known = ", ".join(specs) or "none"
            raise fail(f"{layout.project_config}: no agent named '{name}' under `agents:` (configured: {known})",
                       EXIT_CONFIG)
        spec = specs[name]
        try:
            policy = make_policy(spec, layout)
        except MissingKeyError as e:
            raise fail(f"agent '{name}': {e}", EXIT_CONFIG)
        except ImportError as e:
            raise fail(f"agent '{name}': the {spec.policy} policy needs `pip install orze[agents]` ({e})",
                       EXIT_CONFIG)
        layout.ensure()
        should_stop = None
        token = os.environ.get(LEASE_ENV)
        if token:  # started by an AgentHost: exit when its lease passes to another node
            path = lease_path(layout, name)
            should_stop = lambda: not holds(path, token)  # noqa: E731
        loop = AgentLoop(layout, spec, policy, metric_name=project.task.metric,
                         log=lambda m: console.print(redact(m), highlight=False, markup=False),
                         should_stop=should_stop)
        reports = loop.run(cycles=1 if once else cycles)
        submitted = sum(r.submitted for r in reports)
        console.print(f"agent {name}: {len(reports)} cycle(s), {submitted} idea(s) submitted",
                      highlight=False)
