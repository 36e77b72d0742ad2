"""A pruned run is off the ranking and visible as what it is: leaderboard --all, status (with the
time saved), TPE (Optuna's PRUNED with its curve), the analysis (never its final metric), and
the agents' prompt (which runs, at which epoch)."""

import json

from optuna.trial import TrialState

from orze.agents.base import History
from orze.agents.context import render_prompt
from orze.agents.policies.tpe import TPEPolicy
from orze.analysis.frame import frame_from_rows
from orze.analysis.summary import analyze
from orze.layout import Layout
from orze.status import gather
from orze.store.leaderboard import append_row, ranked
from tests.agents.conftest import make_row
from tests.conftest import REPO, run_orze

PRUNED = {"epoch": 2, "stopped_after_epoch": 3, "epochs_configured": 10, "rule": "median",
          "reason": "best 0.3000 by epoch 2 below the median 0.5000 of 6 comparable runs", "saved_s": 70.0}


def _rows():
    rows = [make_row(i, 0.5 + 0.01 * i, {"backbone": "siglip2", "epochs": 10, "learning_rate": 1e-3 * (i + 1)},
                     curve=[0.4, 0.5 + 0.01 * i]) for i in range(6)]
    # a pruned run whose partial metric is the highest number on the board: still never ranked
    rows.append(make_row(50, 0.99, {"backbone": "convnext", "epochs": 10}, status="pruned",
                         curve=[0.2, 0.3, 0.99], pruned=PRUNED))
    return rows


def test_off_the_ranking_but_shown_with_the_time_saved(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    for r in _rows():
        append_row(layout, r)
    assert all(r["status"] == "done" for r in ranked(_rows()))
    s = gather(layout)
    assert s["pruned"] == 1 and s["done"] == 6 and s["best"]["id"] == "run-000005"
    assert s["pruning"]["runs"] == 1 and s["pruning"]["saved_s"] == 70.0
    assert s["pruning"]["recent"] == [{"id": "run-000050", "epoch": 3, "epochs": 10}]
    human = run_orze("status", root=tmp_path).stdout
    assert "pruned 1" in human and "~70s of training saved" in human and "run-000050 after epoch 3/10" in human
    top = json.loads(run_orze("leaderboard", "--json", root=tmp_path).stdout)
    assert "run-000050" not in [r["id"] for r in top]
    every = run_orze("leaderboard", "--all", "--csv", root=tmp_path).stdout
    line = next(x for x in every.splitlines() if "run-000050" in x)
    assert ",pruned," in line and "pruned after epoch 3 of 10 (judged at epoch 2" in line


def test_tpe_sees_pruned_trials_with_their_curve(default_space):
    study, _ = TPEPolicy(seed=0).build_study(History(space=default_space, rows=_rows()))
    trials = study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    assert len(pruned) == 1 and pruned[0].intermediate_values == {1: 0.2, 2: 0.3, 3: 0.99}
    assert study.best_value == 0.55    # the pruned partial metric is never a trial's value


def test_analysis_never_takes_a_pruned_metric_as_final(default_space):
    a = analyze(frame_from_rows(_rows()), default_space, permutations=10, replay_permutations=10,
                tpe_trials=20)
    d = a.to_dict() if hasattr(a, "to_dict") else a.__dict__
    text = json.dumps(d, default=str)
    assert '"pruned": 1' in text and '"analysed": 6' in text
    assert 0.99 not in list(a.series["metric"]) and max(a.series["best"]) == 0.55


def test_prompt_names_pruned_runs_and_their_epoch(default_space):
    template = (REPO / "prompts" / "research.md").read_text()
    prompt = render_prompt(template, History(space=default_space, rows=_rows()), agent="a", n=2)
    section = prompt.split("## Runs stopped early by the pruner")[1].split("##")[0]
    assert "1 run(s) were stopped early" in section
    assert "run-000050 backbone=convnext" in section and "stopped after epoch 3 of 10" in section
    leaderboard = prompt.split("## Leaderboard")[1].split("##")[0]
    assert "run-000050" not in leaderboard
    none = render_prompt(template, History(space=default_space, rows=_rows()[:6]), agent="a", n=2)
    assert "(no run was pruned)" in none
