"""The leaderboard page lists the best run first by default, in the configured metric's direction:
descending for a maximised metric, ascending for a minimised one (task.metric: log_loss)."""

import re

import yaml
from starlette.testclient import TestClient

from orze.cli.init import init_directory
from orze.dashboard.app import create_app
from orze.layout import Layout
from orze.store.leaderboard import append_row


def _board(root, metric):
    init_directory(root)
    layout = Layout.at(root).ensure()
    proj = yaml.safe_load(layout.project_config.read_text())
    proj.setdefault("task", {})["metric"] = metric
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    for i, value in enumerate((0.5, 0.2, 0.9)):
        append_row(layout, {"id": f"run{i:02d}", "status": "done", "metric": value, "metric_name": metric,
                            "config": {"backbone": "vjepa2"}, "finished_at": 1000.0 + i})
    return layout


def _order(layout, query=""):
    html = TestClient(create_app(layout), base_url="http://127.0.0.1:8765").get("/leaderboard" + query).text
    return re.findall(r"run0\d", html)


def _first_seen(ids):
    out = []
    for i in ids:
        if i not in out:
            out.append(i)
    return out


def test_default_order_follows_the_metrics_direction(tmp_path):
    assert _first_seen(_order(_board(tmp_path / "ap", "ap"))) == ["run02", "run00", "run01"]
    loss = _board(tmp_path / "loss", "log_loss")
    assert _first_seen(_order(loss)) == ["run01", "run00", "run02"]       # lowest loss first
    assert _first_seen(_order(loss, "?sort=metric&desc=1")) == ["run02", "run00", "run01"]  # asked for
