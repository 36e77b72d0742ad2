"""The pure event derivation: each setting changes what fires, and keys depend only on the data."""

import math

import pytest

from orze.analysis.frame import frame_from_rows
from orze.analysis.noise import noise_floor
from orze.analysis.running import RunningBest
from orze.analysis.synthetic import synthetic_rows
from orze.notify.detect import RowEvents, agent_events, cluster_idle, disk_low, node_lost


def row(i, metric=0.5, status="done", t=None, cfg=None, **kw):
    return {"id": f"r{i:04d}", "status": status, "metric": metric, "metric_name": "val_ap",
            "finished_at": 1000.0 + 60 * i if t is None else t, "config": cfg or {"seed": i, "lr": i},
            "error": {"class": "oom"} if status == "failed" else None, **kw}


def fold(ev: RowEvents, rows):
    return [e for r in rows for e in ev.add(r)]


def test_running_noise_floor_equals_the_analysis():
    rows = synthetic_rows(600, seed=3)
    # replicate a few configurations so there is a noise floor to agree on
    for k, base in enumerate(rows[:40]):
        rows.append({**base, "id": f"rep-{k}", "metric": base["metric"] + 0.01 * ((k % 5) - 2),
                     "config": {**base["config"], "seed": 10_000 + k}})
    rb = RunningBest()
    for r in rows:
        rb.add(r)
    ref = noise_floor(frame_from_rows(rows))
    assert ref["replicated_configs"] == rb.replicated_configs > 0
    assert math.isclose(ref["sigma"], rb.sigma, rel_tol=1e-9)
    assert math.isclose(ref["threshold"], rb.threshold, rel_tol=1e-9)
    best = max((r for r in rows if r["status"] == "done"), key=lambda r: (r["metric"], r["id"]))
    assert rb.best_metric == best["metric"]


def test_new_best_needs_a_previous_best_and_reports_noise():
    ev = RowEvents(spike_count=5, spike_window_s=3600, plateau_runs=100)
    out = fold(ev, [row(0, 0.5), row(1, 0.4), row(2, 0.6)])
    assert [e.kind for e in out] == ["new_best"]
    assert out[0].key == "new_best-r0002" and "noise floor unknown" in out[0].text
    # with replicates, a gain inside z*sqrt(2)*sigma is reported as within the noise
    same = {"lr": 1}
    ev = RowEvents(spike_count=5, spike_window_s=3600, plateau_runs=100)
    out = fold(ev, [row(0, 0.50, cfg={**same, "seed": 1}), row(1, 0.52, cfg={**same, "seed": 2}),
                    row(2, 0.5201, cfg={"lr": 2})])
    nb = [e for e in out if e.kind == "new_best"]
    assert nb[-1].fields["beyond_noise"] is False and "within the noise floor" in nb[-1].text


@pytest.mark.parametrize("count", [2, 3])
def test_failure_spike_fires_once_per_spike_at_the_configured_count(count):
    ev = RowEvents(spike_count=count, spike_window_s=600, plateau_runs=100)
    fails = [row(i, None, "failed", t=1000 + i) for i in range(6)]
    out = fold(ev, fails)
    assert [e.key for e in out] == [f"failure_spike-r{count - 1:04d}"]
    # the window passes, the spike is over; a new burst is a new event
    later = [row(100 + i, None, "failed", t=5000 + i) for i in range(count)]
    out = fold(ev, later)
    assert [e.key for e in out] == [f"failure_spike-r{100 + count - 1:04d}"]


def test_spike_window_decides():
    rows = [row(i, None, "misconfigured", t=1000 + 400 * i) for i in range(3)]
    assert fold(RowEvents(spike_count=3, spike_window_s=600, plateau_runs=9), rows) == []
    out = fold(RowEvents(spike_count=3, spike_window_s=1200, plateau_runs=9), rows)
    assert [e.kind for e in out] == ["misconfigured_spike"]


@pytest.mark.parametrize("n", [3, 7])
def test_plateau_after_n_runs_without_improvement(n):
    ev = RowEvents(spike_count=5, spike_window_s=600, plateau_runs=n)
    out = fold(ev, [row(0, 0.9)] + [row(i, 0.1) for i in range(1, 20)])
    assert [(e.kind, e.key) for e in out] == [("plateau", "plateau-r0000")]
    assert out[0].fields["runs"] == n


def test_node_lost_by_age_not_when_stopped():
    hb = {"node": "a", "host": "h", "started_at": 123.4, "slots": [{"run": "x1"}, {"run": None}]}
    assert node_lost([(hb, 100.0)], after_s=300) == []
    assert node_lost([({**hb, "stopped": True}, 1000.0)], after_s=300) == []
    (e,) = node_lost([(hb, 1000.0)], after_s=300)
    assert e.key == "node_lost-a-123" and "x1" in e.text
    assert node_lost([(hb, 1000.0)], after_s=2000) == []


def test_agent_backoff_and_budget():
    states = {"a": {"status": "waiting", "node": "n", "restarts": 2, "detail": "exited with 1"},
              "b": {"status": "running", "node": "n", "restarts": 0}}
    totals = {"b": {"cost_usd": 5.0, "tokens": 10, "last_status": "submitted"},
              "c": {"cost_usd": 0.1, "tokens": 10, "last_status": "submitted"}}
    budgets = {"b": {"budget_usd": 4.0, "budget_tokens": None}, "c": {"budget_usd": 4.0, "budget_tokens": None}}
    out = agent_events(states, totals, budgets)
    assert [(e.kind, e.fields["agent"]) for e in out] == [("agent_backoff", "a"), ("agent_budget", "b")]
    assert out[0].key == "agent_backoff-a-n-waiting-2"
    # a raised budget re-arms (another key); under it, nothing
    assert agent_events({}, totals, {"b": {"budget_usd": 9.0, "budget_tokens": None}}) == []


def test_cluster_idle_and_disk():
    busy = {"node": "a", "slots": [{"run": "x"}]}
    idle = {"node": "b", "slots": [{"run": None}, {"run": None}]}
    assert cluster_idle([(idle, 5.0)], 120, 0, 0)
    assert not cluster_idle([(idle, 5.0), (busy, 5.0)], 120, 0, 0)
    assert cluster_idle([(idle, 5.0), (busy, 500.0)], 120, 0, 0)  # a dead node's slots do not count
    assert not cluster_idle([(idle, 5.0)], 120, 1, 0) and not cluster_idle([(idle, 5.0)], 120, 0, 2)
    assert not cluster_idle([], 120, 0, 0)
    assert disk_low(10 * 10**9, 100 * 10**9, 5.0, "/r") == []
    (e,) = disk_low(2 * 10**9, 100 * 10**9, 5.0, "/r", now=0)
    assert e.key == "disk_low-1970-01-01" and "2.0 GB" in e.title
