"""task.metric reaches every consumer (issue 19): change the metric, and every consumer changes.

Two research directories differ only in configs/orze.yaml's task.metric: `ap` (maximised) and
`log_loss` (minimised). The real worker trains the same three configurations in each; every
consumer (the worker's metrics, early stopping and selection, the verifier's spec, ranking, the
leaderboard command, `orze status`, the agents' prompt, the analysis, the notifier's best) is then
asked about both, and must answer with the configured metric in its direction.
"""

from __future__ import annotations

import math

import pytest

from orze.config import load_project
from orze.daemon.expect import run_context
from orze.metrics import resolve
from orze.store.leaderboard import append_row, ranked, read_rows
from orze.verification import reference as ref
from orze.verification.metric import MetricSpec
from tests.conftest import make_research_dir
from tests.worker.helpers import run_config, verify_built_in

METRICS = ("ap", "log_loss")
CONFIGS = [{"epochs": 5, "patience": 2, "learning_rate": lr, "seq_len": 8, "d_model": 16, "num_heads": 2,
            "temporal_encoder": "transformer", "backbone": "vjepa2"} for lr in (3e-4, 3e-3, 1e-2)]


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory):
    """{metric: (layout, [(config, metrics, effective, findings, row)])} with rows on the leaderboard."""
    out = {}
    for name in METRICS:
        layout = make_research_dir(tmp_path_factory.mktemp(name), backbones=("vjepa2",),
                                   project={"task": {"metric": name}})
        runs = []
        for i, cfg in enumerate(CONFIGS):
            config, metrics, effective, findings = run_config(layout, cfg)
            row = {"id": f"run-{i}", "status": "done", "metric_name": metrics["metric_name"],
                   "metric": metrics["metric"], "test_metric": metrics["test_metric"], "config": config,
                   "finished_at": 1000.0 + i, "verification": {"level": "behavioural"}}
            append_row(layout, row)
            runs.append((config, metrics, effective, findings, row))
        out[name] = (layout, runs)
    return out


def _best_id(runs, name) -> str:
    sign = resolve(name).sign
    return min((r[4] for r in runs), key=lambda row: (-sign * row["metric"], row["id"]))["id"]


def consumer_worker(layout, runs, name):
    """metrics.json: the configured metric, its keys, selection on its optimum in its direction."""
    m = resolve(name)
    for config, metrics, _eff, _f, _row in runs:
        assert metrics["metric_name"] == m.history_key and metrics["task"]["metric"] == name
        assert metrics["selection"]["metric"] == m.history_key
        values = [h[m.history_key] for h in metrics["history"]]
        best = (max if m.direction == "max" else min)(values)
        assert metrics["selection"]["best_epoch"] == values.index(best) + 1
        assert metrics["metric"] == pytest.approx(best, abs=1e-4)
        assert metrics["test_metric"] == metrics[m.test_key]
    return m.history_key


def consumer_early_stopping(layout, runs, name):
    """The epochs run are those early stopping gives this history in the metric's direction."""
    m = resolve(name)
    for config, metrics, _eff, findings, _row in runs:
        values = [h[m.history_key] for h in metrics["history"]]
        assert metrics["epochs_run"] == ref.expected_epochs(values, config["epochs"], config["patience"], m.direction)
        assert findings == [], findings
    return m.direction


def consumer_verifier(layout, runs, name):
    """The daemon's MetricSpec is the registry's; a run scored on the other metric is flagged."""
    _builtin, spec = run_context(load_project(layout))
    assert spec == MetricSpec.of(resolve(name))
    other = METRICS[1 - METRICS.index(name)]
    config, metrics, effective, _f, _row = runs[0]
    swapped = {**metrics, "metric_name": resolve(other).history_key}
    findings = verify_built_in(layout, config, swapped, effective).findings
    assert any(f.startswith("metric: the worker reports metric_name") for f in findings), findings
    return (spec.name, spec.direction)


def consumer_ranking(layout, runs, name):
    order = [r["id"] for r in ranked(read_rows(layout.leaderboard))]
    assert order[0] == _best_id(runs, name)
    values = [r["metric"] for r in ranked(read_rows(layout.leaderboard))]
    assert values == sorted(values, reverse=resolve(name).direction == "max")
    return order[0]


def consumer_leaderboard_command(layout, runs, name):
    from orze.cli.leaderboard import project_metric, select_rows
    rows = select_rows(read_rows(layout.leaderboard), False, [], 10, project_metric(layout))
    assert project_metric(layout) == resolve(name).history_key and rows[0]["id"] == _best_id(runs, name)
    return rows[0]["id"]


def consumer_status(layout, runs, name):
    from orze.status import gather
    best = gather(layout)["best"]
    assert best["id"] == _best_id(runs, name) and best["metric_name"] == resolve(name).history_key
    return best["id"]


def consumer_prompt(layout, runs, name):
    """The agent loop, built from the project's task, prompts with the metric and its direction."""
    from orze.agent_config import AgentSpec
    from orze.agents.context import load_template, render_prompt
    from orze.agents.loop import AgentLoop

    seen = {}

    class Recording:
        def propose(self, history, n):
            seen["prompt"] = render_prompt(load_template(layout), history, agent="probe", n=n)
            seen["leader"] = history.leader()["id"]
            return []

    loop = AgentLoop(layout, AgentSpec(name="probe", policy="random", queue_limit=50), Recording(),
                     task=load_project(layout).task, log=lambda _m: None)
    loop.run(cycles=1, wait_for_room=False)
    m = resolve(name)
    better = "higher" if m.direction == "max" else "lower"
    assert f"validation {m.history_key} ({better} is better)" in seen["prompt"]
    assert seen["leader"] == _best_id(runs, name)
    return seen["prompt"].split("Current leader:")[1].splitlines()[0]


def consumer_analysis(layout, runs, name):
    from orze.analysis.frame import load_frame
    from orze.analysis.summary import analyze
    a = analyze(load_frame(layout), permutations=10, replay_permutations=10, tpe_trials=5)
    sel = a.summary["selection"]
    m = resolve(name)
    assert sel["best_id"] == _best_id(runs, name)
    assert sel["metric_name"] == ("" if m.direction == "max" else "-") + m.history_key
    return sel["metric_name"]


def consumer_notify(layout, runs, name):
    from orze.analysis.running import RunningBest
    rb = RunningBest()
    for r in read_rows(layout.leaderboard):
        rb.add(r)
    assert rb.best["id"] == _best_id(runs, name)
    return rb.best["id"]


CONSUMERS = [consumer_worker, consumer_early_stopping, consumer_verifier, consumer_ranking,
             consumer_leaderboard_command, consumer_status, consumer_prompt, consumer_analysis,
             consumer_notify]


@pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda f: f.__name__.removeprefix("consumer_"))
def test_every_consumer_follows_task_metric(campaigns, consumer):
    answers = {}
    for name in METRICS:
        layout, runs = campaigns[name]
        answers[name] = consumer(layout, runs, name)
    # the same configurations, another metric: the consumer's answer names or ranks differently
    if consumer in (consumer_worker, consumer_early_stopping, consumer_verifier, consumer_analysis,
                    consumer_prompt):
        assert answers["ap"] != answers["log_loss"], answers


def test_the_two_campaigns_really_differ_in_ranking_direction(campaigns):
    """log_loss is minimised and AP maximised: the two leaderboards are ranked in opposite
    directions (checked on the values, independently of which run wins)."""
    for name in METRICS:
        layout, _ = campaigns[name]
        values = [r["metric"] for r in ranked(read_rows(layout.leaderboard))]
        assert all(math.isfinite(v) for v in values)
        assert values == sorted(values, reverse=(name == "ap"))
