"""`orze run`: the node daemon."""

from __future__ import annotations

import logging
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, fail, layout_for
from orze.config import ConfigError, load_project
from orze.slurm.environment import node_name as slurm_node_name
from orze.space import SpaceError, load_space


class LogLevel(str, Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        root: Optional[Path] = RootOption,
        node: Optional[str] = typer.Option(None, "--node", help="Node identity (default: the host name)."),
        max_experiments: Optional[int] = typer.Option(None, "--max-experiments", min=0,
                                                      help="Start at most N experiments, then finish them and exit."),
        until_idle: bool = typer.Option(
            False, "--until-idle", help="Exit when no work is left and none can come: inbox, queue and slots "
                                        "empty, no hosted agent still running (each finished its budget, "
                                        "failed or is paused) and no sweep base left to expand."),
        once: bool = typer.Option(False, "--once", help="One admission and scheduling pass; finish those runs, exit."),
        cpu_slots: Optional[int] = typer.Option(None, "--cpu-slots", min=1, help="Override scheduler.cpu_slots."),
        agents: bool = typer.Option(True, "--agents/--no-agents", help="Host the configured agents."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display or event lines."),
        log_level: LogLevel = typer.Option(LogLevel.warning, "--log-level", case_sensitive=False,
                                           help="Show what was recovered from or degraded at this level "
                                                "and above (with --quiet: warnings and errors only)."),
    ) -> None:
        """Run this node's daemon: admit ideas, schedule them on slots, record results."""
        from orze.daemon.display import Display
        from orze.daemon.node import Daemon, RunBounds, default_node_id
        from orze.daemon.pruner import check_keys

        layout = layout_for(root)
        node = node or slurm_node_name()  # inside a Slurm job: <SLURMD_NODENAME>-<job> (orze/slurm)
        try:
            project = load_project(layout)
            space = load_space(layout.space_config)
            check_keys(project, space, str(layout.project_config))   # pruning.comparable_by
        except (ConfigError, SpaceError) as e:
            raise fail(str(e))
        try:
            layout = project.bind(layout).ensure()
        except ValueError as e:  # storage.group names no group here
            raise fail(f"{layout.project_config}: {e}")
        if cpu_slots is not None:
            project.scheduler.cpu_slots = cpu_slots
        host = None
        if agents and (any(a.enabled for a in project.agents) or project.sweeps.enabled):
            try:
                host = make_agent_host(layout, node, project, space)
            except ValueError as e:  # a sweep rule naming an unknown dimension
                raise fail(f"{layout.project_config}: {e}")
        from orze.notify.notifier import make_notifier

        notifier = make_notifier(layout, node or default_node_id(), project)
        display = Display(quiet=quiet)
        # under --quiet warnings and errors still show, through the same sanitised lines
        level = getattr(logging, log_level.value.upper())
        display.capture_logs(max(level, logging.WARNING) if quiet else level)
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
              f"misconfigured {c.misconfigured}, pruned {c.pruned}, released {c.released}, admitted {c.admitted}, "
              f"rejected {c.rejected}, duplicates {c.duplicates}")


def make_agent_host(layout, node, project, space=None):
    """The agents and auto-sweeps this daemon hosts (each agent once per cluster, by lease)."""
    from orze.agents.host import AgentHost
    from orze.agents.sweeps import SweepRunner
    from orze.daemon.node import default_node_id

    sweeps = None
    if project.sweeps.enabled:
        sweeps = SweepRunner(layout, project.sweeps, space or load_space(layout.space_config))
    return AgentHost(layout, node or default_node_id(), [a for a in project.agents if a.enabled],
                     sweeps=sweeps)
