"""Running the dashboard: bind policy, token, and uvicorn without an access log that could carry
the token (orze.dashboard.auth logs each request's path instead)."""

from __future__ import annotations

import logging
import os

from orze.dashboard.auth import TOKEN_ENV, is_loopback, new_token
from orze.layout import Layout

log = logging.getLogger(__name__)


class BindError(ValueError):
    pass


def resolve_token(host: str, env: dict | None = None, require: bool = False) -> tuple[str | None, bool]:
    """(token, generated). A loopback bind needs none unless $ORZE_DASHBOARD_TOKEN sets one (or
    `require`); any other bind always has one: the environment's, or a fresh one."""
    env = os.environ if env is None else env
    given = (env.get(TOKEN_ENV) or "").strip() or None
    if given is not None and len(given) < 16:
        raise BindError(f"${TOKEN_ENV} is too short ({len(given)} characters; use at least 16)")
    if given or (is_loopback(host) and not require):
        return given, False
    return new_token(), True


def serve(layout: Layout, host: str, port: int, token: str | None, *, loopback_only: bool | None = None,
          log_level: str = "warning",
          analysis_interval_s: float = 120.0, on_ready=None) -> None:
    import uvicorn

    from orze.dashboard.app import create_app

    if not is_loopback(host) and not token:
        raise BindError(f"binding {host} (not a loopback address) requires a token")
    app = create_app(layout, token=token, loopback_only=is_loopback(host) if loopback_only is None else loopback_only,
                     analysis_interval_s=analysis_interval_s)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level=log_level,
                            proxy_headers=False, server_header=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready(app)
    server.run()
