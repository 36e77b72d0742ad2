"""`orze demo`: the embedded default campaign, on synthetic features, with no API key."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, console, fail, layout_for

demo_app = typer.Typer(help="The embedded demo: synthetic features and a bounded campaign.",
                       no_args_is_help=True)


@demo_app.command("features")
def features_cmd(root: Optional[Path] = RootOption,
                 clips: int = typer.Option(1500, "--clips", min=20, help="Number of clips."),
                 frames: int = typer.Option(20, "--frames", min=2, help="Frames per clip."),
                 seed: int = typer.Option(0, "--seed", help="Generator seed (deterministic)."),
                 backbones: Optional[list[str]] = typer.Option(None, "--backbone", help="Only these backbones.")) -> None:
    """Write SYNTHETIC dashcam-like features to features/ (clips.csv and one store per backbone)."""
    from orze.demo.synth import generate

    layout = layout_for(root)
    t0 = time.time()
    with console.status("generating synthetic features…") as st:
        dims = generate(layout, clips, frames, seed, tuple(backbones) if backbones else None,
                        progress=lambda b: st.update(f"generating synthetic features… {b} written"))
    for b, d in dims.items():
        console.print(f"  features/{b}: {clips} clips × {frames} frames × {d} (synthetic)")
    console.print(f"[green]wrote {layout.clips_csv}[/] and {len(dims)} backbones in {time.time() - t0:.1f}s")


@demo_app.command("run")
def run_cmd(root: Optional[Path] = RootOption,
            experiments: int = typer.Option(20, "--experiments", "-n", min=1, help="Experiments to run."),
            regenerate: bool = typer.Option(False, "--regenerate", help="Regenerate the demo features."),
            quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Initialise (if needed), generate the demo features (if missing), run a bounded campaign with
    the configured offline agent, and show the leaderboard."""
    from orze.cli.init import init_directory
    from orze.cli.run import make_agent_host
    from orze.config import ConfigError, load_project
    from orze.daemon.display import Display
    from orze.daemon.node import Daemon, RunBounds
    from orze.space import SpaceError, load_space
    from orze.store.leaderboard import ranked, read_rows

    layout = layout_for(root)
    init_directory(layout.root)
    if regenerate or not layout.clips_csv.exists():
        features_cmd(root=layout.root, clips=1500, frames=20, seed=0, backbones=None)
    try:
        project = load_project(layout)
        space = load_space(layout.space_config)
    except (ConfigError, SpaceError) as e:
        raise fail(str(e))
    agents = [a for a in project.agents if a.enabled]
    if not agents:
        raise fail(f"{layout.project_config}: no enabled agent to propose ideas (add one under `agents:`)")
    done_before = len(read_rows(layout.leaderboard))
    display = Display(quiet=quiet)
    daemon = Daemon(layout, project, space, bounds=RunBounds(max_experiments=experiments),
                    on_event=display.event, agent_host=make_agent_host(layout, None, project, space))
    daemon.install_signal_handlers()
    display.attach(daemon)
    t0 = time.time()
    try:
        c = daemon.run()
    finally:
        display.close()
    wall = time.time() - t0
    rows = read_rows(layout.leaderboard)[done_before:]
    best = ranked(rows)[:1]
    console.print(f"[bold]demo campaign:[/] {c.started} started, {c.done} done, {c.failed} failed, "
                  f"{c.misconfigured} misconfigured in {wall:.0f}s wall time")
    if best:
        console.print(f"best validation AP {best[0]['metric']:.4f} ({best[0]['id']})")
    from orze.cli.app import app
    app(["leaderboard", "--root", str(layout.root), "--top", "10"], standalone_mode=False)
    from orze.demo.story import campaign_story

    for line in campaign_story(rows, metric_name=project.task.metric):
        console.print(line, highlight=False)
    console.print(f"The campaign's story in plots: [bold]orze report --root {layout.root}[/] "
                  f"(writes {layout.report}/index.html; `orze analyze` prints the same analysis).",
                  highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")
