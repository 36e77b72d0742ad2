"""The dashboard in a real browser (headless Chromium through Selenium) against `orze dashboard`
serving a research directory with a real campaign, and one with 100,000 rows. The screenshots in
docs/dashboard.md come from these tests (ORZE_DASHBOARD_SCREENSHOTS=docs/img/dashboard)."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from orze.layout import Layout
from orze.store import queue
from orze.store.leaderboard import append_row, read_rows
from tests.dashboard.conftest import Server, http_get, screenshot

pytestmark = pytest.mark.slow


def wait(driver, timeout=20):
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def texts(driver, css):
    """Texts of the matching elements, read in one script (the live update swaps elements)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.trim())", css)


def text_of(driver, element_id):
    return driver.execute_script("const e = document.getElementById(arguments[0]); "
                                 "return e ? e.innerText.trim() : null", element_id)


def image_loaded(driver, css) -> bool:
    return bool(driver.execute_script(
        "const i = document.querySelector(arguments[0]); return i && i.complete && i.naturalWidth > 0", css))


@pytest.fixture(scope="module")
def server(campaign):
    s = Server(campaign.root)
    yield s
    s.stop()


def test_every_page_renders(campaign, server, browser, tmp_path):
    rows = read_rows(campaign.leaderboard)
    done = [r for r in rows if r["status"] == "done"]
    best = max(done, key=lambda r: (r["metric"], r["id"]))
    d = browser

    d.get(server.url + "/")
    wait(d).until(lambda d: image_loaded(d, "#overview-chart"))
    assert d.find_element(By.ID, "best-metric").text == f"{best['metric']:.4f}"
    assert d.find_element(By.ID, "run-count").text == str(len(rows))
    page = d.find_element(By.TAG_NAME, "main").text
    assert "node-a" in page and "explorer" in page and "$2.00" in page
    assert "no daemon running" in page          # the daemon is down: the page says so, and still works
    assert "last heartbeat" in page
    screenshot(d, "overview", tmp_path)

    d.get(server.url + "/leaderboard")
    assert len(d.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr")) == len(rows)
    assert texts(d, "#leaderboard tbody tr td:nth-child(2)")[0] == best["id"]   # best first by default
    screenshot(d, "leaderboard", tmp_path)

    child = next(r for r in rows if r.get("parent"))       # the re-seeded copy of the best of round one
    parent = next(r for r in rows if r["id"] == child["parent"])
    d.get(server.url + f"/run/{parent['id']}")
    wait(d).until(lambda d: image_loaded(d, "img.chart"))
    assert child["id"] in d.find_element(By.ID, "genealogy").text
    assert json.loads(d.find_element(By.ID, "config").text)["pooling"] == parent["config"]["pooling"]
    assert "encoder" in d.find_element(By.ID, "effective").text
    assert "epoch" in d.find_element(By.ID, "log").text
    assert "matches what was asked" in d.find_element(By.ID, "findings").text
    screenshot(d, "run", tmp_path)
    d.get(server.url + f"/run/{child['id']}")
    assert parent["id"] in d.find_element(By.ID, "genealogy").text

    failed = next(r for r in rows if r["status"] == "failed")
    d.get(server.url + f"/run/{failed['id']}")
    assert "missing_features" in d.find_element(By.ID, "findings").text

    d.get(server.url + "/queue")
    assert d.find_element(By.ID, "queue-depth").text == str(queue.depth(campaign)) == "2"
    assert "pooling" in d.find_element(By.ID, "rejected").text and "avg" in d.find_element(By.ID, "rejected").text
    screenshot(d, "queue", tmp_path)

    d.get(server.url + "/nodes")
    page = d.find_element(By.TAG_NAME, "main").text
    assert "node-a" in page and "stopped" in page and "last heartbeat" in page
    screenshot(d, "nodes", tmp_path)

    d.get(server.url + "/agents")
    rows_text = texts(d, "#agents tr")
    claude = next(r for r in rows_text if r.startswith("claude"))
    explorer = next(r for r in rows_text if r.startswith("explorer"))
    assert "random" in explorer and "$2.00" in explorer
    assert "claude-sonnet-4-6" in claude and "$0.05" in claude and "1 (0 failed)" in claude
    screenshot(d, "agents", tmp_path)

    d.get(server.url + "/analysis")
    # computed in the background: the page updates itself when the result is ready
    wait(d, 120).until(lambda d: d.find_elements(By.ID, "convergence") and image_loaded(d, "#convergence"))
    assert "Variance shares" in d.find_element(By.TAG_NAME, "main").text
    screenshot(d, "analysis", tmp_path)
    assert "Traceback" not in server.output()


def test_filtering_and_paging(campaign, server, browser):
    rows = read_rows(campaign.leaderboard)
    d = browser
    d.get(server.url + "/leaderboard?per=3&sort=id&desc=0")
    pages = -(-len(rows) // 3)
    assert d.find_element(By.ID, "page-of").text == f"page 1 of {pages}"
    first = texts(d, "#leaderboard tbody tr td:nth-child(2)")
    assert first == sorted(r["id"] for r in rows)[:3]
    d.find_element(By.ID, "next").click()
    wait(d).until(lambda d: d.find_element(By.ID, "page-of").text == f"page 2 of {pages}")
    assert texts(d, "#leaderboard tbody tr td:nth-child(2)") == sorted(r["id"] for r in rows)[3:6]

    d.get(server.url + "/leaderboard")
    Select(d.find_element(By.NAME, "cfg.pooling")).select_by_value("mean")
    d.find_element(By.ID, "apply").click()
    wait(d).until(lambda d: "cfg.pooling=mean" in d.current_url)
    want = [r for r in rows if r["config"]["pooling"] == "mean"]
    assert d.find_element(By.ID, "lb-total").text == str(len(want)) and want
    col = 6 + 2   # '#', id, status, metric, test, backbone, encoder, pooling
    assert set(texts(d, f"#leaderboard tbody tr td:nth-child({col})")) == {"mean"}

    Select(d.find_element(By.NAME, "status")).select_by_value("failed")
    d.find_element(By.ID, "apply").click()
    wait(d).until(lambda d: "status=failed" in d.current_url)
    want = [r for r in rows if r["config"]["pooling"] == "mean" and r["status"] == "failed"]
    assert d.find_element(By.ID, "lb-total").text == str(len(want))

    d.get(server.url + "/leaderboard?agent=explorer")
    assert d.find_element(By.ID, "lb-total").text == str(sum(r.get("agent") == "explorer" for r in rows))
    status, body, _ = http_get(server.url + "/leaderboard?sort=test_metric")
    assert status == 400 and b"unknown field" in body          # the test metric never selects


def test_live_update_after_a_new_row(campaign, browser, tmp_path):
    root = tmp_path / "live"
    shutil.copytree(campaign.root, root, ignore=shutil.ignore_patterns("features"))
    layout = Layout.at(root)
    s = Server(root)
    try:
        d = browser
        d.get(s.url + "/leaderboard?sort=finished_at&desc=1")
        wait(d).until(lambda d: text_of(d, "live") == "live")
        d.execute_script("window.__notReloaded = 42")
        n = len(read_rows(layout.leaderboard))
        base = read_rows(layout.leaderboard)[0]
        append_row(layout, {**base, "id": "live-000001", "finished_at": time.time(), "metric": 0.999})
        wait(d, 10).until(lambda d: "live-000001" in texts(d, "#leaderboard tbody tr td:nth-child(2)")[:1])
        assert d.execute_script("return window.__notReloaded") == 42      # swapped in, not reloaded
        d.get(s.url + "/")
        wait(d).until(lambda d: text_of(d, "live") == "live")
        d.execute_script("window.__notReloaded = 43")
        append_row(layout, {**base, "id": "live-000002", "finished_at": time.time(), "metric": 0.9995})
        wait(d, 10).until(lambda d: text_of(d, "run-count") == str(n + 2))
        assert text_of(d, "best-metric") == "0.9995"
        assert d.execute_script("return window.__notReloaded") == 43
    finally:
        s.stop()


def test_token_is_enforced(campaign, browser):
    token = "t0k3n-" + "x" * 20
    s = Server(campaign.root, "--require-token", "--verbose", env={"ORZE_DASHBOARD_TOKEN": token})
    try:
        for path in ("/", "/leaderboard", "/static/style.css", "/stream", "/chart/overview.png",
                     "/api/leaderboard", "/run/x", "/analysis"):
            status, _, _ = http_get(s.url + path)
            assert status == 401, path
            assert http_get(s.url + path, {"Authorization": "Bearer wrong-" + token})[0] == 401, path
        assert http_get(s.url + "/static/style.css", {"Authorization": f"Bearer {token}"})[0] == 200
        status, _, headers = http_get(s.url + f"/leaderboard?per=3&token={token}")
        assert status == 303 and headers["location"] == "/leaderboard?per=3"
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]

        d = browser
        d.delete_all_cookies()
        d.get(s.url + "/")
        assert "token is required" in d.find_element(By.TAG_NAME, "body").text
        d.get(s.url + f"/?token={token}")
        assert d.current_url == s.url + "/"                   # the token left the address bar
        wait(d).until(lambda d: image_loaded(d, "#overview-chart"))   # images carry the cookie
        wait(d).until(lambda d: text_of(d, "live") == "live")   # and the stream
        d.find_element(By.LINK_TEXT, "leaderboard").click()
        wait(d).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#leaderboard tbody tr"))
        d.delete_all_cookies()
        d.get(s.url + "/leaderboard")
        assert "token is required" in d.find_element(By.TAG_NAME, "body").text
        time.sleep(0.3)
        log = s.output()
        assert "GET /leaderboard" in log and token not in log    # requests logged, the token never
    finally:
        s.stop()


def test_a_100000_row_leaderboard_pages(big_board, browser, tmp_path):
    s = Server(big_board.root)
    try:
        d = browser
        d.get(s.url + "/leaderboard?per=100&page=500")
        assert d.find_element(By.ID, "page-of").text == "page 500 of 1000"
        ranks = texts(d, "#leaderboard tbody tr td:nth-child(1)")
        assert ranks[0] == "49901" and len(ranks) == 100
        metrics = [float(x) for x in texts(d, "#leaderboard tbody tr td:nth-child(4)")]
        assert metrics == sorted(metrics, reverse=True)
        d.find_element(By.ID, "next").click()
        wait(d).until(lambda d: d.find_element(By.ID, "page-of").text == "page 501 of 1000")
        d.get(s.url + "/leaderboard")
        Select(d.find_element(By.NAME, "cfg.backbone")).select_by_value("dinov2_b")
        d.find_element(By.ID, "apply").click()
        wait(d).until(lambda d: "cfg.backbone=dinov2_b" in d.current_url)
        total = int(d.find_element(By.ID, "lb-total").text)
        assert 0 < total < 100_000
        assert set(texts(d, "#leaderboard tbody tr td:nth-child(6)")) == {"dinov2_b"}
        d.find_element(By.PARTIAL_LINK_TEXT, "learning_rate").click()
        wait(d).until(lambda d: "sort=cfg.learning_rate" in d.current_url)
        lrs = [float(x) for x in texts(d, "#leaderboard tbody tr td:nth-child(10)")]
        assert lrs == sorted(lrs, reverse=True)
        screenshot(d, "leaderboard-100k", tmp_path)
        d.get(s.url + "/")
        wait(d).until(lambda d: image_loaded(d, "#overview-chart"))
        assert d.find_element(By.ID, "run-count").text == "100000"
        screenshot(d, "overview-100k", tmp_path)
        d.get(s.url + "/analysis")      # analysed in the background; the page updates itself
        wait(d, 300).until(lambda d: image_loaded(d, "#convergence") and image_loaded(d, "#entropy"))
        assert "100000 finished runs analysed" in text_of(d, "content")
        screenshot(d, "analysis-100k", tmp_path)
    finally:
        s.stop()
