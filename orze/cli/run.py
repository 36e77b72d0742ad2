"""`orze run`: the node daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, fail, layout_for
from orze.config import ConfigError, load_project
from orze.space import SpaceError, load_space


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        root: Optional[Path] = RootOption,
        node: Optional[str] = typer.Option(None, "--node", help="Node identity (default: the host name)."),
        max_experiments: Optional[int] = typer.Option(None, "--max-experiments", min=0,
                                                      help="Start at most N experiments, then finish them and exit."),
        until_idle: bool = typer.Option(False, "--until-idle", help="Exit when inbox, queue and slots are empty."),
        once: bool = typer.Option(False, "--once", help="One admission and scheduling pass; finish those runs, exit."),
        cpu_slots: Optional[int] = typer.Option(None, "--cpu-slots", min=1, help="Override scheduler.cpu_slots."),
        agents: bool = typer.Option(True, "--agents/--no-agents", help="Host the configured agents."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display or event lines."),
    ) -> None:
        """Run this node's daemon: admit ideas, schedule them on slots, record results."""
        from orze.daemon.display import Display
        from orze.daemon.node import Daemon, RunBounds, default_node_id

        layout = layout_for(root)
        try:
            project = load_project(layout)
            space = load_space(layout.space_config)
        except (ConfigError, SpaceError) as e:
            raise fail(str(e))
        if cpu_slots is not None:
            project.scheduler.cpu_slots = cpu_slots
        host = None
        if agents and any(a.enabled for a in project.agents):
            host = make_agent_host(layout, node, project)
        from orze.notify.notifier import make_notifier

        notifier = make_notifier(layout, node or default_node_id(), project)
        display = Display(quiet=quiet)
        daemon = Daemon(layout, project, space, node=node,
                        bounds=RunBounds(max_experiments, until_idle, once),
                        on_event=display.event, agent_host=host, notifier=notifier)
        daemon.install_signal_handlers()
        display.attach(daemon)
        try:
            counters = daemon.run()
        finally:
            display.close()
            if notifier is not None:
                notifier.close()
        c = counters
        print(f"orze run: started {c.started}, done {c.done}, failed {c.failed}, "
              f"misconfigured {c.misconfigured}, released {c.released}, admitted {c.admitted}, "
              f"rejected {c.rejected}, duplicates {c.duplicates}")


def make_agent_host(layout, node, project):
    from orze.agents.host import AgentHost
    from orze.daemon.node import default_node_id

    return AgentHost(layout, node or default_node_id(), [a for a in project.agents if a.enabled])
