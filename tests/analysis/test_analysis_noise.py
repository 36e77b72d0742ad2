"""Replicated configurations: grouping without the seed, mean ± std, and the within-noise flag."""

import json

import numpy as np
import pandas as pd
import pytest

from orze.analysis.noise import best_events, noise_floor, pooled_std, replicate_stats, replicate_summary
from orze.analysis.summary import analyze, to_jsonable
from orze.analysis.synthetic import synthetic_rows
from orze.store.leaderboard import rows_to_frame


def _row(i, metric, cfg, status="done", test_metric=None):
    return {"id": f"r{i}", "status": status, "metric": metric, "test_metric": test_metric, "config": cfg,
            "seed": cfg.get("seed")}


def _frame():
    a = {"backbone": "vjepa2", "temporal_encoder": "zipformer", "learning_rate": 0.001}
    b = {"backbone": "siglip2", "temporal_encoder": "retnet", "learning_rate": 0.001}
    rows = [_row(0, 0.50, {**b, "seed": 0}),
            _row(1, 0.70, {**a, "seed": 0}),
            _row(2, 0.72, {**a, "seed": 11}),
            _row(3, 0.66, {**a, "seed": 12}),
            _row(4, 0.52, {**b, "seed": 5}),
            _row(5, None, {**b, "seed": 6}, status="failed"),
            _row(6, 0.99, {**b, "seed": 7}, status="misconfigured")]
    return rows_to_frame(rows)


def test_replicates_group_by_config_without_seed_and_only_done_runs_count():
    s = replicate_summary(_frame())
    assert len(s) == 2
    top = s.iloc[0]
    assert top["ids"] == ["r1", "r2", "r3"] and top["n"] == 3 and top["first_id"] == "r1"
    assert top["mean"] == pytest.approx(np.mean([0.70, 0.72, 0.66]))
    assert top["std"] == pytest.approx(np.std([0.70, 0.72, 0.66], ddof=1))
    assert s.iloc[1]["ids"] == ["r0", "r4"]  # failed and misconfigured runs are not replicates
    stats = replicate_stats(_frame())
    assert stats["r2"]["n"] == 3 and "r5" not in stats and "r6" not in stats


def test_replicates_ignore_per_run_fields_the_daemon_records():
    rows = [dict(_row(i, 0.6 + 0.01 * i, {"backbone": "vjepa2", "seed": i}), history=[{"epoch": 1, "loss": i}],
                 peak_memory_mb=100.0 + i, seconds_per_epoch=1.0 + i, startup_s=float(i), extra_field=i)
            for i in range(3)]
    from orze.analysis.frame import frame_from_rows
    s = replicate_summary(frame_from_rows(rows))
    assert len(s) == 1 and s.iloc[0]["n"] == 3  # extra_field is not config: frame_from_rows knows
    assert len(replicate_summary(rows_to_frame(rows), dims=["backbone", "seed"])) == 1


def test_pooled_std_and_within_noise_flag():
    s = replicate_summary(_frame())
    expected = np.sqrt((2 * np.var([0.70, 0.72, 0.66], ddof=1) + 1 * np.var([0.50, 0.52], ddof=1)) / 3)
    assert pooled_std(s) == pytest.approx(expected)
    done = pd.DataFrame({"id": ["a", "b", "c", "d"], "metric": [0.5, 0.8, 0.805, 0.9], "seq": range(4)})
    ev = best_events(done, sigma=0.01)
    assert ev["id"].tolist() == ["b", "c", "d"]
    assert ev["within_noise"].tolist() == [False, True, False]  # threshold 1.96*sqrt(2)*0.01 = 0.0277
    assert best_events(done, sigma=None)["within_noise"].isna().all()
    out = noise_floor(_frame())
    assert out["replicated_configs"] == 2 and out["threshold"] == pytest.approx(1.96 * np.sqrt(2) * expected)


def test_test_metric_never_changes_the_analysis():
    rows = synthetic_rows(150, seed=3)
    other = [dict(r, test_metric=1.0 - (r["test_metric"] or 0)) for r in rows]
    kw = dict(permutations=10, replay_permutations=50, tpe_trials=20, seed=0)
    one = to_jsonable(analyze(rows_to_frame(rows), **kw).summary)
    two = to_jsonable(analyze(rows_to_frame(other), **kw).summary)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)
