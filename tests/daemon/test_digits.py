"""A real dataset through the real paths: scikit-learn's digits (orze.datasets.digits) imported
with `orze features import`, a multi-class campaign on accuracy through `orze run --until-idle`,
beating the pooled-statistics logistic-regression baseline on test accuracy; the winner's kept
predictions and weights are usable (`orze leaderboard --metric`, `orze predict`)."""

import csv
import io
import json

import numpy as np
import pytest
import yaml

from orze.datasets import digits
from orze.features.store import read_clips
from orze.store.leaderboard import read_rows
from tests.conftest import run_orze

pytestmark = pytest.mark.slow
FAST = {"epochs": 10, "batch_size": 128, "learning_rate": 1.0e-2}


def digits_campaign(tmp_path, ideas, lengths=None):
    root = tmp_path / "r"
    source, labels = digits.make_research_dir(root, metric="accuracy", lengths=lengths)
    run_orze("features", "import", "-b", digits.BACKBONE, "--from", str(source), "--labels", str(labels),
             root=root)
    (tmp_path / "ideas.yaml").write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(tmp_path / "ideas.yaml"), root=root)
    run_orze("run", "--until-idle", "--quiet", root=root)
    return root


def test_digits_campaign_beats_the_pooled_baseline_and_its_winner_is_usable(tmp_path):
    ideas = [{**i, **FAST} for i in digits.ideas()[:2]]
    root = digits_campaign(tmp_path, ideas)
    rows = read_rows(root / "runs" / "leaderboard.jsonl")
    assert len(rows) == 2 and all(r["status"] == "done" for r in rows), [r.get("error") for r in rows]
    assert all(r["metric_name"] == "val_accuracy" and r["verification"]["level"] == "behavioural" for r in rows)
    board = json.loads(run_orze("leaderboard", "--json", root=root).stdout)
    best = board[0]
    baseline = digits.pooled_baseline(digits.load())
    assert best["test_metric"] > baseline["test"] + 0.05, (best["test_metric"], baseline)

    # the classes were read from the labels: 10 logits, probabilities over 10 classes kept
    metrics = json.loads((root / "runs" / "exp" / best["id"] / "metrics.json").read_text())
    assert metrics["task"] == {"type": "multiclass", "classes": 10, "metric": "accuracy", "direction": "max"}
    kept = np.load(root / "runs" / "exp" / best["id"] / "predictions.npz")
    assert kept["test_probs"].shape == (360, 10) and kept["val_probs"].shape == (359, 10)
    assert np.isclose((kept["test_probs"].argmax(1) == kept["test_labels"]).mean(), best["test_metric"])

    # any registered metric, from the kept predictions
    f1 = json.loads(run_orze("leaderboard", "--json", "--metric", "macro_f1", root=root).stdout)
    assert {r["id"] for r in f1} == {r["id"] for r in rows} and f1[0]["metric_name"] == "val_macro_f1"
    assert all(0.5 < r["metric"] <= 1 for r in f1)
    bad = run_orze("leaderboard", "--metric", "ap", root=root, check=False)
    assert bad.returncode != 0 and "does not apply to a multiclass task" in bad.stderr

    # orze predict with the winner's weights scores the clips again: the same test accuracy
    out = run_orze("predict", best["id"], "--features", str(root / "features"), root=root).stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 1797 and list(table[0]) == ["clip_id", "predicted"] + [f"p_{k}" for k in range(10)]
    truth = {c.clip_id: (c.label, c.split) for c in read_clips(root / "features" / "clips.csv")}
    test = [(int(r["predicted"]), truth[r["clip_id"]][0]) for r in table if truth[r["clip_id"]][1] == "test"]
    assert np.isclose(np.mean([p == y for p, y in test]), best["test_metric"], atol=1e-9)


def test_ragged_digits_campaign_masks_padding_and_beats_the_baseline(tmp_path):
    """The variable-length path on real data: each clip cut to a random 4–8 frames, imported as a
    ragged store (lengths.npy), trained with masks from the lengths, verified, still ahead of the
    pooled baseline computed on the same ragged clips."""
    ideas = [{**digits.ideas()[0], **FAST}]
    root = digits_campaign(tmp_path, ideas, lengths=(4, 8))
    assert (root / "features" / digits.BACKBONE / "lengths.npy").exists()
    rows = read_rows(root / "runs" / "leaderboard.jsonl")
    assert len(rows) == 1 and rows[0]["status"] == "done", rows[0].get("error")
    assert rows[0]["verification"]["level"] == "behavioural"
    eff = json.loads((root / "runs" / "exp" / rows[0]["id"] / "effective_config.json").read_text())
    seq = eff["sequence_lengths"]
    assert seq["ragged"] and seq["splits"]["train"]["min"] == 4 and seq["splits"]["train"]["max"] == 8
    baseline = digits.pooled_baseline(digits.load(lengths=(4, 8)))
    assert rows[0]["test_metric"] > baseline["test"], (rows[0]["test_metric"], baseline)
