"""Who may read the dashboard.

- Bound to a loopback address, no token is needed (only this host's users reach it), but requests
  must name a loopback host in their Host header: a web page elsewhere cannot read the campaign
  through DNS rebinding.
- Bound to anything else, a token is required on every request: pages, static files, charts, the
  live stream. It comes from $ORZE_DASHBOARD_TOKEN or is generated at start and printed once to
  the terminal (never to a log). A request presents it as `Authorization: Bearer <token>`, as the
  `orze_dashboard` cookie, or once as `?token=` (the response then sets the cookie, HttpOnly and
  SameSite=Strict, and redirects to the same address without the token, so it leaves the address
  bar and the history). Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import secrets
import time
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

TOKEN_ENV = "ORZE_DASHBOARD_TOKEN"
COOKIE = "orze_dashboard"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}

access_log = logging.getLogger("orze.dashboard.access")


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _host_name(host_header: str) -> str:
    h = host_header.strip()
    if h.startswith("["):
        return h[: h.find("]") + 1] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


class AuthMiddleware:
    """Pure ASGI middleware (so it guards the streaming response too), plus an access log line
    per request with the path only: the query string may carry the token."""

    def __init__(self, app, token: str | None, loopback_only: bool):
        self.app, self.token, self.loopback_only = app, token, loopback_only

    def _ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented.encode(), self.token.encode())

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.monotonic()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        status_holder = {"status": 0}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            if self.loopback_only and not self.token and not is_loopback(_host_name(headers.get("host", ""))):
                return await _plain(send_logged, 421, "This dashboard answers only to localhost addresses.")
            if self.token:
                auth = headers.get("authorization", "")
                bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
                cookie = SimpleCookie()
                try:
                    cookie.load(headers.get("cookie", ""))
                except Exception:
                    pass
                from_cookie = cookie[COOKIE].value if COOKIE in cookie else None
                query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                from_query = next((v for k, v in query if k == "token"), None)
                if self._ok(bearer) or self._ok(from_cookie):
                    return await self.app(scope, receive, send_logged)
                if self._ok(from_query):
                    rest = urlencode([(k, v) for k, v in query if k != "token"])
                    location = path + ("?" + rest if rest else "")
                    return await _redirect_with_cookie(send_logged, location, self.token,
                                                       secure=scope.get("scheme") == "https")
                return await _plain(send_logged, 401, "A token is required: open the address printed by "
                                                      "`orze dashboard` (it carries ?token=…), or send "
                                                      "Authorization: Bearer <token>.")
            return await self.app(scope, receive, send_logged)
        finally:
            access_log.info("%s %s %s %.1fms", scope.get("method"), path, status_holder["status"],
                            1000 * (time.monotonic() - t0))


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send, location: str, token: str, secure: bool) -> None:
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})
