"""The dashboard on a large campaign: `orze dashboard` (a real server process) over a leaderboard of
R rows (default 100,000; synthetic rows from orze.analysis.synthetic, shaped like a real campaign's).

Prints:
  - start-up: process start to the first answered request (the index reads the whole file once);
  - per page, warm (after WARMUP requests), over N requests: time to first byte (response headers)
    and to the complete body, median and 95th percentile: the overview, its chart, and leaderboard
    pages (first, deep, sorted by a config dimension, filtered);
  - the same pages in headless Chromium: navigation start to the load event (HTML, CSS, script and
    the chart image), median of N;
  - cold paths: the first request of a sort order or a filter not used before, the overview chart
    redrawn after a new row, and a cached sort after a new row;
  - the server's resident memory (VmRSS) and its peak (VmHWM);
  - the delay from appending a row to runs/leaderboard.jsonl to its appearance in an open page
    (leaderboard sorted newest first, and the overview's run count), over K appends.

Usage: python scripts/bench_dashboard.py [--rows R] [--requests N] [--appends K] [--dir D] [--no-browser]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orze.analysis.synthetic import synthetic_rows, write_leaderboard  # noqa: E402
from orze.cli.init import init_directory  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.store.leaderboard import append_row  # noqa: E402

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PAGES = [("overview", "/"), ("overview chart (PNG)", "/chart/overview.png"),
         ("leaderboard page 1", "/leaderboard"), ("leaderboard page 1000", "/leaderboard?page=1000"),
         ("leaderboard sorted by learning_rate, page 10", "/leaderboard?sort=cfg.learning_rate&desc=0&page=10"),
         ("leaderboard filtered backbone=dinov2_b, encoder=retnet", "/leaderboard?cfg.backbone=dinov2_b&cfg.temporal_encoder=retnet"),
         ("JSON page (api/leaderboard)", "/api/leaderboard?page=50")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed_get(port: int, path: str) -> tuple[float, float, int]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    ttfb = time.perf_counter() - t0
    body = r.read()
    full = time.perf_counter() - t0
    c.close()
    if r.status != 200:
        raise SystemExit(f"GET {path}: {r.status} {body[:200]!r}")
    return ttfb, full, len(body)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def mem(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) / 1024
    return out


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--no-first-run", "--disable-extensions", "--window-size=1400,1000"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=o)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--appends", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="orze-bench-dashboard-")) if args.dir is None else args.dir
    root = tmp / "campaign"
    t = time.perf_counter()
    rows = synthetic_rows(args.rows, seed=0)
    if root.exists():
        shutil.rmtree(root)
    init_directory(root)
    layout = Layout.at(root).ensure()
    write_leaderboard(layout.leaderboard, rows)
    print(f"leaderboard: {args.rows} rows, {layout.leaderboard.stat().st_size / 1e6:.1f} MB "
          f"(generated in {time.perf_counter() - t:.1f}s)")

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "orze", "dashboard", "--root", str(root), "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                timed_get(port, "/static/style.css")
                break
            except (OSError, SystemExit):
                if proc.poll() is not None:
                    raise SystemExit(proc.stderr.read().decode())
                time.sleep(0.05)
        print(f"start-up to first answered request: {time.perf_counter() - t0:.2f}s")
        print(f"\nwarm requests ({args.warmup} warm-up, then {args.requests}), seconds:")
        print(f"{'page':58} {'TTFB med':>9} {'p95':>7} {'full med':>9} {'p95':>7} {'bytes':>9}")
        for name, path in PAGES:
            for _ in range(args.warmup):
                timed_get(port, path)
            res = [timed_get(port, path) for _ in range(args.requests)]
            tt, ff = [r[0] for r in res], [r[1] for r in res]
            print(f"{name:58} {statistics.median(tt):9.4f} {pct(tt, 95):7.4f} {statistics.median(ff):9.4f} "
                  f"{pct(ff, 95):7.4f} {res[-1][2]:9d}")
        print("\ncold paths, seconds (full response):")
        for name, path in (("leaderboard sorted by a dimension not sorted on before (dropout)",
                            "/leaderboard?sort=cfg.dropout"),
                           ("leaderboard with a filter not used before (weight_decay range)",
                            "/leaderboard?cfg.weight_decay=0.001..0.01")):
            print(f"  {name:66} {timed_get(port, path)[1]:.3f}")
        redraw, page = [], []
        for k in range(3):
            append_row(layout, {**rows[-1], "id": f"bench-cold-{k}", "finished_at": time.time()})
            time.sleep(0.3)
            redraw.append(timed_get(port, "/chart/overview.png")[1])
            page.append(timed_get(port, "/leaderboard?sort=cfg.learning_rate&desc=0&page=10")[1])
        print(f"  {'overview chart redrawn after a new row (median of 3)':66} {statistics.median(redraw):.3f}")
        print(f"  {'a cached sort after a new row (inserted in place; median of 3)':66} {statistics.median(page):.3f}")
        rows.extend({**rows[-1], "id": f"bench-cold-{k}"} for k in range(3))
        m = mem(proc.pid)
        print(f"\nserver memory: {m['VmRSS']:.0f} MiB resident, peak {m['VmHWM']:.0f} MiB")

        if args.no_browser or not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
            print("\n(browser figures skipped: no chromium/chromedriver, or --no-browser)")
            return
        d = browser()
        try:
            url = f"http://127.0.0.1:{port}"
            print(f"\nheadless Chromium, navigation start → load event (HTML, CSS, JS, images), "
                  f"median of {args.requests // 2}:")
            for name, path in PAGES:
                if path.startswith("/chart") or path.startswith("/api"):
                    continue
                d.get(url + path)
                times = []
                for _ in range(max(1, args.requests // 2)):
                    d.get(url + path)
                    times.append(d.execute_script(
                        "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime") / 1000)
                print(f"  {name:58} {statistics.median(times):.3f}s (max {max(times):.3f}s)")

            print(f"\nnew row → visible in an open page ({args.appends} appends each):")
            base = rows[-1]
            for name, path, probe in (
                    ("leaderboard, newest first", "/leaderboard?sort=finished_at&desc=1",
                     "const c = document.querySelector('#leaderboard tbody tr td:nth-child(2)'); return c ? c.innerText : ''"),
                    ("overview (run count)", "/",
                     "const c = document.getElementById('run-count'); return c ? c.innerText : ''")):
                d.get(url + path)
                t = time.monotonic()
                while d.execute_script("return document.getElementById('live').innerText") != "live":
                    if time.monotonic() - t > 30:
                        raise SystemExit("the live stream did not connect")
                    time.sleep(0.05)
                delays = []
                for k in range(args.appends):
                    rid = f"bench-{name[:4]}-{k}"
                    n_before = len(rows) + len(delays) + (args.appends if name.startswith("overview") else 0)
                    want = rid if name.startswith("leader") else str(n_before + 1)
                    time.sleep(1.0)
                    t = time.perf_counter()
                    append_row(layout, {**base, "id": rid, "finished_at": time.time()})
                    while d.execute_script(probe) != want:
                        if time.perf_counter() - t > 30:
                            raise SystemExit(f"{rid} did not appear within 30s")
                        time.sleep(0.01)
                    delays.append(time.perf_counter() - t)
                print(f"  {name:30} median {statistics.median(delays):.3f}s, max {max(delays):.3f}s")
            m = mem(proc.pid)
            print(f"\nserver memory after the browser runs: {m['VmRSS']:.0f} MiB resident, peak {m['VmHWM']:.0f} MiB")
        finally:
            d.quit()
    finally:
        proc.terminate()
        proc.wait(10)
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
