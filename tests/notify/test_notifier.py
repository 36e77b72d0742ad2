"""The notifier against a real webhook receiver on 127.0.0.1: each event is sent once across the
nodes sharing a directory, the rate limit holds, a failing endpoint is retried with backoff, its
failures show in `orze status`, and it never blocks the caller."""

import json
import os
import time

import pytest

from orze.layout import Layout
from orze.notify.config import NotifyConfig
from orze.notify.notifier import Notifier, read_status
from orze.store.atomic import atomic_write_json
from orze.store.leaderboard import append_row
from tests.conftest import run_orze


def cfg(url, **kw):
    base = {"webhooks": [{"name": "hook", "url": url, "format": "json"}], "poll_s": 0.01,
            "retry_backoff_s": 0.05, "retry_max_backoff_s": 0.2, "disk_min_free_gb": 0,
            "queue_idle_after_s": 3600}
    base.update(kw)
    return NotifyConfig.model_validate(base)


def row(i, metric, status="done", cfg=None):
    return {"id": f"r{i:04d}", "status": status, "metric": metric, "metric_name": "val_ap",
            "finished_at": time.time(), "config": cfg or {"lr": i}, "agent": "a",
            "error": {"class": "oom"} if status == "failed" else None}


@pytest.fixture
def layout(tmp_path):
    return Layout.at(tmp_path).ensure()


def tick(n: Notifier):
    n._next = 0.0
    return n.tick()


def test_history_is_silent_new_rows_fire_once_across_nodes(layout, receiver):
    append_row(layout, row(0, 0.5))
    append_row(layout, row(1, 0.7))            # a new best, but before the notifiers started
    a, b = (Notifier(layout, node, cfg(receiver.url)) for node in ("a", "b"))
    assert tick(a) == [] and tick(b) == []
    append_row(layout, row(2, 0.8))
    sent = tick(a) + tick(b) + tick(a)
    assert [e.key for e in sent] == ["new_best-r0002"]
    assert receiver.wait_for(lambda r: len(r.bodies) == 1)
    body = receiver.bodies[0]
    assert body["kind"] == "new_best" and body["sent_by"] == "a" and body["fields"]["previous_id"] == "r0001"
    assert (layout.notify_sent / "new_best-r0002").exists()
    for n in (a, b):
        n.close()
    time.sleep(0.1)
    assert receiver.keys() == ["new_best-r0002"]
    assert read_status(layout)["a"]["sent"] == 1 and read_status(layout)["b"]["sent"] == 0


def test_slack_format_and_event_filter_per_webhook(layout, receiver):
    c = cfg(receiver.url, webhooks=[{"name": "s", "url": receiver.url, "format": "slack",
                                     "events": ["failure_spike"]}], failure_spike_count=2)
    n = Notifier(layout, "a", c)
    tick(n)
    append_row(layout, row(0, 0.5))
    append_row(layout, row(1, 0.9))                          # new best: not for this webhook
    append_row(layout, row(2, None, "failed"))
    append_row(layout, row(3, None, "failed"))               # the spike
    assert {e.kind for e in tick(n)} == {"new_best", "failure_spike"}
    assert receiver.wait_for(lambda r: len(r.bodies) == 1)
    n.close()
    (body,) = receiver.bodies
    assert set(body) >= {"text"} and "2 failed runs" in body["text"] and body["text"].startswith(":rotating_light:")


def test_events_setting_turns_kinds_off(layout, receiver):
    n = Notifier(layout, "a", cfg(receiver.url, events=["plateau"]))
    tick(n)
    append_row(layout, row(0, 0.5))
    append_row(layout, row(1, 0.9))
    assert tick(n) == []
    n.close()
    assert receiver.hits == 0 and not any(layout.notify_sent.iterdir())


def test_rate_limit_is_campaign_wide(layout, receiver):
    a, b = Notifier(layout, "a", cfg(receiver.url, max_per_hour=2)), Notifier(layout, "b", cfg(receiver.url, max_per_hour=2))
    tick(a), tick(b)
    for i in range(5):
        append_row(layout, row(i, 0.1 * (i + 1)))   # a new best every row after the first
    handled = tick(a) + tick(b)
    assert len(handled) == 4
    a.close(), b.close()
    assert len(receiver.bodies) == 2
    st = read_status(layout)
    assert st["a"]["suppressed"] + st["b"]["suppressed"] == 2
    markers = [json.loads(p.read_text()) for p in layout.notify_sent.iterdir()]
    assert sum(m["suppressed"] for m in markers) == 2 and len(markers) == 4


def test_retried_after_500_then_delivered(layout, receiver):
    receiver.status = 500
    n = Notifier(layout, "a", cfg(receiver.url, retry_attempts=5))
    tick(n)
    append_row(layout, row(0, 0.5)), append_row(layout, row(1, 0.6))
    tick(n)
    assert receiver.wait_for(lambda r: r.hits >= 2)
    receiver.status = 200
    assert receiver.wait_for(lambda r: len(r.bodies) == 1)
    n.close()
    st = read_status(layout)["a"]
    assert st["sent"] == 1 and st["failed"] == 0


def test_failing_webhook_is_recorded_and_shown_by_status(layout, receiver):
    receiver.status = 500
    n = Notifier(layout, "a", cfg(receiver.url, retry_attempts=3))
    tick(n)
    append_row(layout, row(0, 0.5)), append_row(layout, row(1, 0.6))
    tick(n)
    assert receiver.wait_for(lambda r: r.hits == 3)
    deadline = time.monotonic() + 5
    while read_status(layout)["a"]["failed"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    n.close()
    st = read_status(layout)["a"]
    assert st["failed"] == 1 and st["failures"][0]["attempts"] == 3 and "HTTP 500" in st["failures"][0]["error"]
    assert receiver.url not in json.dumps(st)               # the URL (a credential) is never recorded
    out = run_orze("status", root=layout.root).stdout
    assert "notification failures" in out and "HTTP 500" in out and "failed 1" in out
    assert receiver.hits == 3                               # retry_attempts bounds the tries


def test_a_hanging_webhook_never_blocks_tick(layout, receiver):
    receiver.delay_s = 3.0
    n = Notifier(layout, "a", cfg(receiver.url, webhooks=[{"name": "hook", "url": receiver.url, "timeout_s": 1}]))
    tick(n)
    for i in range(4):
        append_row(layout, row(i, 0.1 * (i + 1)))
    t0 = time.monotonic()
    assert len(tick(n)) == 3
    assert time.monotonic() - t0 < 1.0   # the sends happen on the sender's thread
    n.close(timeout_s=0.1)


def test_url_env_unset_is_a_recorded_failure(layout, receiver, monkeypatch):
    monkeypatch.delenv("ORZE_TEST_HOOK", raising=False)
    c = cfg(receiver.url, webhooks=[{"name": "hook", "url_env": "ORZE_TEST_HOOK"}])
    n = Notifier(layout, "a", c)
    tick(n)
    append_row(layout, row(0, 0.5)), append_row(layout, row(1, 0.6))
    tick(n)
    n.close()
    st = read_status(layout)["a"]
    assert st["failed"] == 1 and "ORZE_TEST_HOOK is not set" in st["failures"][0]["error"]
    monkeypatch.setenv("ORZE_TEST_HOOK", receiver.url)
    n = Notifier(layout, "b", c)
    tick(n)
    append_row(layout, row(2, 0.7))
    tick(n)
    assert receiver.wait_for(lambda r: r.keys() == ["new_best-r0002"])
    n.close()


def test_node_lost_and_queue_idle_from_heartbeats(layout, receiver):
    now = time.time()
    hb = {"node": "dead", "host": "h", "started_at": 42.0, "updated_at": now, "slots": [{"run": None}]}
    atomic_write_json(layout.nodes / "dead.json", hb)
    old = time.time() - 1000
    os.utime(layout.nodes / "dead.json", (old, old))
    atomic_write_json(layout.nodes / "idle.json", {"node": "idle", "started_at": 1.0, "slots": [{"run": None}]})
    n = Notifier(layout, "a", cfg(receiver.url, node_lost_after_s=300, queue_idle_after_s=0))
    keys = {e.key for e in tick(n)}
    assert keys == {"node_lost-dead-42", "queue_idle-none"}
    assert tick(n) == []                           # already sent: nothing again
    n.close()
    assert sorted(receiver.keys()) == sorted(keys)


def test_disk_low_setting(layout, receiver):
    n = Notifier(layout, "a", cfg(receiver.url, disk_min_free_gb=10**9))   # any disk is "low"
    assert [e.kind for e in tick(n)] == ["disk_low"]
    n.close()
    n = Notifier(layout, "b", cfg(receiver.url, disk_min_free_gb=0))
    assert tick(n) == []
    n.close()


def test_bad_config_names_the_field(tmp_path):
    from orze.config import ConfigError, load_project
    layout = Layout.at(tmp_path)
    layout.configs.mkdir(parents=True)
    layout.project_config.write_text("notify:\n  webhooks:\n    - {name: s, url: x}\n  evnts: []\n")
    with pytest.raises(ConfigError) as e:
        load_project(layout)
    assert "notify.evnts" in str(e.value) or "notify.webhooks" in str(e.value)
    layout.project_config.write_text("notify:\n  events: [new_bset]\n")
    with pytest.raises(ConfigError, match="notify.events"):
        load_project(layout)


def test_poll_s_throttles_the_tick(layout, receiver):
    n = Notifier(layout, "a", cfg(receiver.url, poll_s=3600))
    assert n.tick() == []                        # the first look: the baseline
    append_row(layout, row(0, 0.5)), append_row(layout, row(1, 0.6))
    assert n.tick() == []                        # within poll_s: the files are not even read
    assert [e.key for e in tick(n)] == ["new_best-r0001"]
    n.close()


def test_timeout_and_max_pending(layout, receiver):
    receiver.delay_s = 2.0
    c = cfg(receiver.url, retry_attempts=1, max_pending=1,
            webhooks=[{"name": "hook", "url": receiver.url, "timeout_s": 0.3}])
    n = Notifier(layout, "a", c)
    tick(n)
    for i in range(5):
        append_row(layout, row(i, 0.1 * (i + 1)))
    assert len(tick(n)) == 4
    deadline = time.monotonic() + 10
    while read_status(layout)["a"]["failed"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    n.close(timeout_s=0.1)
    st = read_status(layout)["a"]
    assert st["failed"] >= 1 and any("timed out" in f["error"] or "Timeout" in f["error"] for f in st["failures"])
    assert st["dropped"] >= 1 and any("already pending" in f["error"] for f in st["failures"])


def test_backoff_doubles_and_caps():
    import random

    from orze.notify.deliver import backoff_delay
    rng = random.Random(0)
    assert [backoff_delay(a, 2.0, 10.0, jitter=0) for a in (1, 2, 3, 4, 5)] == [2.0, 4.0, 8.0, 10.0, 10.0]
    assert all(1.6 <= backoff_delay(1, 2.0, 10.0, rng=rng) <= 2.4 for _ in range(50))


def test_a_retry_pending_at_shutdown_is_recorded(layout, receiver):
    receiver.status = 500
    n = Notifier(layout, "a", cfg(receiver.url, retry_attempts=4, retry_backoff_s=60, retry_max_backoff_s=60))
    tick(n)
    append_row(layout, row(0, 0.5)), append_row(layout, row(1, 0.6))
    tick(n)
    assert receiver.wait_for(lambda r: r.hits == 1)
    n.close(timeout_s=0.2)
    st = read_status(layout)["a"]
    assert st["failed"] == 1 and "stopped before try 2 of 4" in st["failures"][0]["error"]
