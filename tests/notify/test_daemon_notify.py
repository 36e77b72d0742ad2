"""Notifications from real `orze run` daemons: two nodes on one directory send each event once,
and a webhook that answers 500 to everything neither slows nor stops the campaign."""

import json
import subprocess
import sys

import pytest
import yaml

from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, orze_env, run_orze

pytestmark = pytest.mark.slow
FAST = {"epochs": 1, "d_model": 16, "num_heads": 2, "seq_len": 8}


def notify_section(url, **kw):
    return {"webhooks": [{"name": "hook", "url": url, "format": "json"}], "poll_s": 0.05,
            "retry_attempts": 3, "retry_backoff_s": 0.05, "retry_max_backoff_s": 0.1,
            "disk_min_free_gb": 0, "queue_idle_after_s": 3600, **kw}


def submit(layout, tmp_path, ideas):
    p = tmp_path / "ideas.yaml"
    p.write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(p), root=layout.root)


def test_two_daemons_send_each_event_once(tmp_path, receiver):
    layout = make_research_dir(tmp_path / "r", project={
        "scheduler": {"cpu_slots": 1}, "notify": notify_section(receiver.url, plateau_runs=2)})
    submit(layout, tmp_path, [{**FAST, "pooling": "mean", "seed": 1}])
    run_orze("run", "--until-idle", "--quiet", "--node", "a", root=layout.root)   # history: silent
    ideas = [{**FAST, "pooling": p, "seed": s} for p in ("attention", "last", "max") for s in (2, 3)]
    submit(layout, tmp_path, ideas)
    procs = [subprocess.Popen([sys.executable, "-m", "orze", "run", "--until-idle", "--quiet", "--node", n,
                               "--root", str(layout.root)], env=orze_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    rows = read_rows(layout.leaderboard)
    assert len(rows) == 7 and all(r["status"] == "done" for r in rows)
    best, expected = -1.0, set()
    since = 0
    for r in rows:
        if r["metric"] > best:
            if best >= 0 and r is not rows[0]:
                expected.add(f"new_best-{r['id']}")
            best, best_id, since = r["metric"], r["id"], 0
        else:
            since += 1
            if since == 2:
                expected.add(f"plateau-{best_id}")
    keys = receiver.keys()
    assert len(keys) == len(set(keys)), keys                      # nothing twice
    assert set(keys) == expected, (keys, expected)                # and nothing missing
    assert {b["sent_by"] for b in receiver.bodies} <= {"a", "b"}
    assert sorted(p.name for p in layout.notify_sent.iterdir()) == sorted(expected)


def test_a_500_webhook_does_not_disturb_the_daemon(tmp_path, receiver):
    receiver.status = 500
    layout = make_research_dir(tmp_path / "r", project={"notify": notify_section(receiver.url, plateau_runs=1)})
    submit(layout, tmp_path, [{**FAST, "pooling": p} for p in ("attention", "mean", "last", "max")])
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    rows = read_rows(layout.leaderboard)
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert receiver.hits >= 3                                      # it did try, and retried
    status = json.loads(run_orze("status", "--json", root=layout.root).stdout)
    (node,) = status["notify"].values()
    assert node["failed"] >= 1 and node["sent"] == 0
    # Each failure is the webhook's HTTP 500 after all 3 tries, or one the daemon's stop cut short
    # (--until-idle ended while a try was pending), which its error then says.
    assert all(("HTTP 500" in f["error"] and f["attempts"] == 3) or "stopped before try" in f["error"]
               for f in node["failures"]), node["failures"]
    assert "notification failures" in run_orze("status", root=layout.root).stdout
