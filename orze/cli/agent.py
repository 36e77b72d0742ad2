"""`orze agent NAME`: run one configured agent in the foreground (what `orze run` hosts).

Exit status: 0 when the budget, `max_ideas` or `--cycles` is reached with at least one good
cycle; 1 when every cycle of a bounded run failed (errors, or nothing submitted); 75 when `--once`
found the queue full (nothing proposed), or a hosted agent's lease is gone; 78 on a
configuration error (unknown agent, missing API key), which the host never restarts.
`--resume` closes a paused agent's circuit (a running agent picks it up within a second).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, console, fail, layout_for

# Exit status for a configuration problem the agent cannot fix by retrying (sysexits EX_CONFIG):
# the host does not restart an agent that exits with it.
EXIT_CONFIG = 78
EXIT_TEMPFAIL = 75
EXIT_ALL_FAILED = 1


def register(app: typer.Typer) -> None:
    @app.command("agent")
    def agent_cmd(name: str = typer.Argument(..., help="An agent named under `agents:` in configs/orze.yaml."),
                  root: Optional[Path] = RootOption,
                  cycles: Optional[int] = typer.Option(None, "--cycles", "-n", min=1,
                                                       help="Stop after this many proposing cycles."),
                  once: bool = typer.Option(False, "--once", help="One cycle, then exit (75 if the queue is full)."),
                  resume: bool = typer.Option(False, "--resume",
                                              help="Close the agent's circuit (paused / backing off) and exit.")) -> None:
        """Run one research agent in the foreground until its budget or --cycles is reached."""
        from orze.agents import health
        from orze.agents.host import EXIT_LEASE_LOST, HOST_PID_ENV, LEASE_ENV, LEASE_S_ENV, lease_path
        from orze.agents.keys import MissingKeyError, redact
        from orze.agents.loop import AgentLoop
        from orze.agents.policies import make_policy
        from orze.agents.watch import LeaseWatch
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
        if resume:
            old = health.load(layout, name)
            health.resume(layout, name)
            console.print(f"agent {name}: resumed (was {old.state}"
                          + (f": {old.reason}" if old.reason else "") + ")", highlight=False, markup=False)
            return
        try:
            policy = make_policy(spec, layout)
        except MissingKeyError as e:
            raise fail(f"agent '{name}': {e}", EXIT_CONFIG)
        except ImportError as e:
            raise fail(f"agent '{name}': the {spec.policy} policy needs `pip install orze[agents]` ({e})",
                       EXIT_CONFIG)
        layout.ensure()
        watch = None
        token = os.environ.get(LEASE_ENV)
        if token:  # started by an AgentHost: end when the host or its lease is gone
            host_pid = os.environ.get(HOST_PID_ENV)
            watch = LeaseWatch(lease_path(layout, name), token, float(os.environ.get(LEASE_S_ENV) or 60.0),
                               host_pid=int(host_pid) if host_pid else None).start()
        loop = AgentLoop(layout, spec, policy, task=project.task,
                         log=lambda m: console.print(redact(m), highlight=False, markup=False),
                         should_stop=watch)
        reports = loop.run(cycles=1 if once else cycles, wait_for_room=not once)
        if watch is not None and watch.lost.is_set():
            console.print(f"agent {name}: stopping: {watch.reason}", highlight=False, markup=False)
            raise typer.Exit(EXIT_LEASE_LOST)
        submitted = sum(r.submitted for r in reports)
        console.print(f"agent {name}: {len(reports)} cycle(s), {submitted} idea(s) submitted",
                      highlight=False)
        if once and reports and reports[-1].status == "backpressure":
            raise fail(f"agent '{name}': nothing proposed: the queue is full ({reports[-1].detail})",
                       EXIT_TEMPFAIL)
        proposing = [r for r in reports if r.status not in ("backpressure", "budget", "stopped")]
        if (once or cycles) and proposing and all(r.failed for r in proposing):
            last = proposing[-1]
            raise fail(f"agent '{name}': every cycle failed ({len(proposing)}); last: "
                       f"{last.status}: {redact(last.detail)}", EXIT_ALL_FAILED)
