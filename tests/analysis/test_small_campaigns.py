"""Small campaigns read well: `orze report` takes `orze analyze`'s options, windows shrink to fit,
and a fit that does not converge says so in words."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from orze.analysis.convergence import convergence, describe_fit, fit_model
from orze.analysis.exploration import fit_window, sliding_entropy
from orze.analysis.summary import analyze
from orze.analysis.synthetic import synthetic_rows, write_leaderboard
from orze.cli.app import app
from orze.layout import Layout
from orze.space import load_space
from orze.store.leaderboard import rows_to_frame

REPO = Path(__file__).resolve().parents[2]
FAST = ["--permutations", "5", "--replays", "20", "--tpe-trials", "0"]


def _options(name: str) -> set[str]:
    cmd = typer.main.get_command(app).commands[name]
    return {o for p in cmd.params for o in p.opts}


def test_report_takes_the_same_options_as_analyze():
    assert _options("analyze") - {"--json"} == _options("report") - {"--out"}
    assert "--min-group-runs" in _options("report") and "--window" in _options("report")


def test_report_options_change_the_report(tmp_path):
    layout = Layout.at(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "space.yaml", layout.space_config)
    write_leaderboard(layout.leaderboard, synthetic_rows(24, seed=3, space=load_space(layout.space_config)))
    runner = CliRunner()
    texts = {}
    for k in (10, 2):
        out = tmp_path / f"r{k}"
        r = runner.invoke(app, ["report", "--root", str(tmp_path), "--out", str(out),
                                "--min-group-runs", str(k), *FAST])
        assert r.exit_code == 0, r.output
        texts[k] = (out / "index.html").read_text()
    # with groups of 10 runs required, 24 runs over many cells support no ANOVA; with 2 they do
    assert "need" in texts[10].split("Variance decomposition")[1][:400]
    assert "eta2" in texts[2].split("Variance decomposition")[1][:600]


def test_windows_shrink_to_fit_a_small_campaign():
    assert fit_window(20, 100) == (10, 2)
    assert fit_window(500, 100) == (100, 20)          # a large campaign keeps its window
    rows = synthetic_rows(20, seed=1)
    ent = sliding_entropy(rows_to_frame(rows), window=100)
    assert len(ent) >= 3                               # a curve, not one point
    a = analyze(rows_to_frame(rows), permutations=5, replay_permutations=20, tpe_trials=0)
    assert a.summary["entropy"]["window"] == 10 and len(a.series["entropy"]) == len(ent)


def test_a_fit_that_does_not_converge_says_so():
    n = np.arange(1, 9, dtype=float)
    assert describe_fit({"ok": False, "message": "did not converge: maximum evaluations exceeded"}) \
        .startswith("did not converge: the optimiser found no parameters")
    assert describe_fit(fit_model("power", n[:3], np.array([0.5, 0.6, 0.6])).to_dict()) \
        .startswith("not fitted: 3 points")
    # one jump after seven flat runs: nothing pins a ceiling or a rate
    conv = convergence(np.array([0.5] * 7 + [0.9]), permutations=0)
    for model in ("power", "exponential"):
        assert conv["fits"][model]["verdict"].startswith("did not converge to determined parameters")
    assert "selected by AIC: logarithmic" in conv["verdict"] and "ceiling" not in conv["verdict"]
    smooth = 0.9 - 0.4 * n ** -0.8
    good = convergence(np.r_[smooth, smooth[-1] + 0.001 * np.arange(1, 30)], permutations=0)
    assert good["verdict"].startswith("Converged:") and "ceiling" in good["verdict"]


def test_a_ceiling_at_the_bound_is_not_called_a_prediction():
    from orze.analysis.convergence import convergence_sentence

    fit = {"ok": True, "params": {"a_inf": 1.0, "b": 0.4, "c": 0.06}, "stderr": {"a_inf": 0.1, "b": 0.1, "c": 0.01}}
    text = convergence_sentence({"runs": 20, "fits": {"exponential": fit}, "selected": "exponential",
                                 "upper_bound": 1.0})
    assert "sits at the metric's bound (1)" in text and "predicting" not in text
