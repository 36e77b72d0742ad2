"""`orze dashboard`: the live, read-only web view of a campaign (needs the `dashboard` extra)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, console, fail, layout_for


def register(app: typer.Typer) -> None:
    @app.command("dashboard")
    def dashboard_cmd(
        root: Optional[Path] = RootOption,
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback "
                                 "requires a token ($ORZE_DASHBOARD_TOKEN, else one is generated)."),
        require_token: bool = typer.Option(False, "--require-token", help="Require the token on a loopback "
                                           "bind too (a login node shared with other users)."),
        port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port."),
        analysis_interval: float = typer.Option(120.0, "--analysis-interval", min=1.0,
                                                help="Seconds between background re-analyses."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Log each request (path only)."),
    ) -> None:
        """Serve the live dashboard: overview, leaderboard, runs, queue, nodes, agents, analysis."""
        try:
            from orze.dashboard.auth import is_loopback
            from orze.dashboard.server import BindError, resolve_token, serve
        except ImportError as e:
            raise fail(f"the dashboard needs its extra: pip install 'orze[dashboard]' ({e})")
        layout = layout_for(root)
        if not layout.runs.exists():
            raise fail(f"{layout.root}: not a research directory (no runs/; `orze init` makes one)")
        try:
            token, generated = resolve_token(host, require=require_token)
        except BindError as e:
            raise fail(str(e))
        logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                            format="%(asctime)s %(name)s %(message)s")
        shown = "localhost" if host in ("127.0.0.1", "::1") else host

        def ready(app):
            url = f"http://{shown}:{port}/"
            if token and generated:
                console.print(f"orze dashboard for {layout.root}: {url}?token={token}", highlight=False)
                console.print("(a token was generated for this non-loopback bind; set "
                              "ORZE_DASHBOARD_TOKEN to choose one)", highlight=False)
            elif token:
                console.print(f"orze dashboard for {layout.root}: {url} (token from ORZE_DASHBOARD_TOKEN)",
                              highlight=False)
            else:
                console.print(f"orze dashboard for {layout.root}: {url}", highlight=False)
        try:
            serve(layout, host, port, token, loopback_only=not require_token and is_loopback(host),
                  analysis_interval_s=analysis_interval, on_ready=ready,
                  log_level="info" if verbose else "warning")
        except BindError as e:
            raise fail(str(e))
