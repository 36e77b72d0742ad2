"""Who may read the dashboard: the bind policy and the token, against the real application."""

import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from orze.cli.init import init_directory
from orze.dashboard.app import create_app
from orze.dashboard.server import BindError, resolve_token
from orze.layout import Layout
from tests.conftest import orze_env


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth") / "r"
    init_directory(root)
    return Layout.at(root).ensure()


def test_resolve_token():
    assert resolve_token("127.0.0.1", {}) == (None, False)
    assert resolve_token("::1", {}) == (None, False)
    tok, generated = resolve_token("0.0.0.0", {})
    assert generated and len(tok) >= 24
    assert resolve_token("10.1.2.3", {"ORZE_DASHBOARD_TOKEN": "a" * 20}) == ("a" * 20, False)
    assert resolve_token("127.0.0.1", {}, require=True)[1] is True
    with pytest.raises(BindError, match="too short"):
        resolve_token("0.0.0.0", {"ORZE_DASHBOARD_TOKEN": "short"})


def test_loopback_rejects_foreign_host_headers(layout):
    app = create_app(layout, token=None, loopback_only=True)
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/static/style.css").status_code == 200
    assert TestClient(app, base_url="http://attacker.example").get("/").status_code == 421


def test_token_on_every_route(layout):
    token = "k" * 32
    app = create_app(layout, token=token, loopback_only=False)
    c = TestClient(app, base_url="http://10.0.0.5:8765", follow_redirects=False)
    for path in ("/", "/leaderboard", "/queue", "/nodes", "/agents", "/analysis", "/run/x",
                 "/chart/overview.png", "/api/overview", "/static/live.js", "/stream"):
        assert c.get(path).status_code == 401, path
        assert c.get(path, headers={"Authorization": "Bearer " + "k" * 31}).status_code == 401, path
    ok = c.get("/api/overview", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json()["rows"] == 0
    r = c.get(f"/queue?token={token}&x=1")
    assert r.status_code == 303 and r.headers["location"] == "/queue?x=1"
    c.cookies.set("orze_dashboard", token)
    assert c.get("/queue").status_code == 200


def test_cli_refuses_a_short_token_before_binding(layout):
    out = subprocess.run([sys.executable, "-m", "orze", "dashboard", "--host", "0.0.0.0", "--root",
                          str(layout.root)], env=orze_env({"ORZE_DASHBOARD_TOKEN": "short"}),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ORZE_DASHBOARD_TOKEN is too short" in out.stderr
    assert "short" not in out.stdout


def test_run_ids_are_not_paths(layout):
    c = TestClient(create_app(layout, token=None, loopback_only=True), base_url="http://127.0.0.1")
    for bad in ("%2e%2e", ".hidden", "..%2F..%2Fetc"):   # a literal /run/.. is resolved by the client
        assert c.get(f"/run/{bad}").status_code == 404, bad
        assert c.get(f"/chart/run/{bad}/curves.png").status_code == 404, bad
