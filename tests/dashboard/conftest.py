"""Fixtures for the dashboard tests: a research directory holding a real (small) campaign run by
the real daemon and agent, a 100,000-row leaderboard, `orze dashboard` as a real server process,
and headless Chromium (Debian's chromium + chromium-driver) through Selenium."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from orze.layout import Layout
from orze.store.leaderboard import read_rows
from tests.agents.servers import ScriptedServer
from tests.conftest import make_research_dir, orze_env, run_orze

CHROMIUM = os.environ.get("ORZE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ORZE_CHROMEDRIVER", "/usr/bin/chromedriver")
FAST = {"epochs": 1, "d_model": 16, "num_heads": 2, "seq_len": 8}
SCREENSHOTS = os.environ.get("ORZE_DASHBOARD_SCREENSHOTS")  # docs/img/dashboard when regenerating docs


CLAUDE_REPLY = """Two ideas that use the video backbone:

```yaml
- idea_name: vjepa2 max pooling
  rationale: max pooling keeps the abrupt change
  backbone: vjepa2
  temporal_encoder: transformer
  pooling: max
  epochs: 2
  d_model: 16
  num_heads: 2
  seq_len: 8
- idea_name: dinov2 last-frame
  backbone: dinov2_b
  temporal_encoder: transformer
  pooling: last
  epochs: 2
  d_model: 16
  num_heads: 2
  seq_len: 8
```
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, headers: dict | None = None, timeout: float = 10):
    """(status, body bytes, headers) without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


class Server:
    def __init__(self, root: Path, *args: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"dashboard-{self.port}.log"
        self._log = open(self.log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "orze", "dashboard", "--root", str(root),
                                      "--port", str(self.port), *args],
                                     env=orze_env(env), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"orze dashboard exited {self.proc.returncode}: {self.output()}")
            try:
                status, _, _ = http_get(self.url + "/static/style.css", timeout=2)
                if status in (200, 401):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"orze dashboard did not start: {self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


def _write(path: Path, ideas) -> Path:
    path.write_text(yaml.safe_dump(ideas))
    return path


@pytest.fixture(scope="session")
def campaign(tmp_path_factory) -> Layout:
    """A real campaign: an agent's proposals and a human's, trained by `orze run` on CPU; one
    failure, one rejection, a child of the best run, two ideas left in the queue."""
    tmp = tmp_path_factory.mktemp("campaign")
    agent = {"name": "explorer", "policy": "random", "ideas_per_cycle": 3, "queue_limit": 20, "seed": 1,
             "budget_usd": 2.0, "options": {"subspace": {"d_model": 16, "num_layers": [1], "num_heads": [2],
                                                           "epochs": [2], "seq_len": [8], "batch_size": [32, 64],
                                                           "backbone": ["vjepa2", "dinov2_b"],
                                                           "temporal_encoder": ["transformer"]}}}
    claude = {"name": "claude", "policy": "claude", "model": "claude-sonnet-4-6", "ideas_per_cycle": 2,
              "queue_limit": 20, "budget_usd": 0.05, "options": {"timeout_s": 5.0, "backoff_s": 0.01, "retries": 3}}
    layout = make_research_dir(tmp / "campaign", project={"agents": [agent, claude]})
    run_orze("agent", "explorer", "--cycles", "1", root=layout.root)
    # The claude policy through the real Anthropic SDK against a local Messages-API server: its
    # first answer is a 500 (retried), then two ideas.
    with ScriptedServer("anthropic", [("status", 500), ("text", CLAUDE_REPLY)]) as llm:
        proj = yaml.safe_load(layout.project_config.read_text())
        proj["agents"][1]["options"]["base_url"] = llm.url
        layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
        out = subprocess.run([sys.executable, "-m", "orze", "agent", "claude", "--cycles", "1",
                              "--root", str(layout.root)], env=orze_env({"ANTHROPIC_API_KEY": "sk-test-local"}),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    # A store whose features.npy went missing (admission sees its meta.json; training fails with
    # missing_features): the campaign's one failed run.
    broken = layout.backbone_dir("siglip2")
    broken.mkdir(parents=True, exist_ok=True)
    for name in ("meta.json", "clips.txt"):
        shutil.copy(layout.backbone_dir("dinov2_b") / name, broken / name)
    human = [{**FAST, "pooling": "mean", "epochs": 3, "idea_name": "mean pooling baseline"},
             {**FAST, "pooling": "attention", "loss": "bce", "epochs": 3, "idea_name": "attention + bce"},
             {**FAST, "backbone": "siglip2", "idea_name": "its features.npy is missing"},
             {**FAST, "pooling": "avg", "idea_name": "a typo"}]
    run_orze("submit", str(_write(tmp / "h.yaml", human)), root=layout.root, check=False)
    run_orze("run", "--until-idle", "--quiet", "--no-agents", "--node", "node-a", root=layout.root)
    best = max((r for r in read_rows(layout.leaderboard) if r["status"] == "done"), key=lambda r: r["metric"])
    child = {**{k: v for k, v in best["config"].items()}, "seed": 4242, "parent": best["id"],
             "idea_name": "reseed the best"}
    run_orze("submit", str(_write(tmp / "c.yaml", [child])), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", "--no-agents", "--node", "node-a", root=layout.root)
    run_orze("submit", str(_write(tmp / "q.yaml", [{**FAST, "pooling": "max", "seed": s} for s in (7, 8)])),
             root=layout.root)
    return layout


@pytest.fixture(scope="session")
def big_board(tmp_path_factory) -> Layout:
    """A research directory whose leaderboard has 100,000 rows (synthetic, analysis-shaped)."""
    from orze.analysis.synthetic import synthetic_rows, write_leaderboard
    from orze.cli.init import init_directory

    root = tmp_path_factory.mktemp("big") / "big"
    init_directory(root)
    layout = Layout.at(root).ensure()
    write_leaderboard(layout.leaderboard, synthetic_rows(100_000, seed=0))
    return layout


@pytest.fixture(scope="session")
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if missing:
        pytest.skip(f"headless browser tests need Debian's chromium and chromium-driver "
                    f"(apt-get install -y chromium chromium-driver); missing: {', '.join(missing)}")
    os.environ.setdefault("SE_AVOID_STATS", "true")   # Selenium Manager: no usage statistics
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-default-apps", "--disable-extensions", "--no-first-run", "--disable-domain-reliability",
              "--disable-client-side-phishing-detection", "--metrics-recording-only",
              "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def screenshot(driver, name: str, tmp_path: Path) -> Path:
    """A full-page screenshot: into $ORZE_DASHBOARD_SCREENSHOTS (the docs' images) when set."""
    out = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.min(document.documentElement.scrollHeight, 2600)")
    driver.set_window_size(1400, max(700, int(height) + 20))
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path
