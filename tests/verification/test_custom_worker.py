"""The custom-worker contract: the minimal worker from docs/verification.md passes through the real
daemon at level `self-reported`; the same worker reporting a NaN or a 1.7 metric is recorded
misconfigured, stays off the ranking, leaves the others' order unchanged, and `orze status` still
names the true best. Metric integrity and the ranking are also checked directly (pure)."""

from __future__ import annotations

import json
import math
import re
import sys

import pytest
import yaml

from orze.store.leaderboard import ranked, read_rows
from orze.verification.metric import MetricSpec, metric_checks
from tests.conftest import REPO, make_research_dir, run_orze

SPACE = {
    "version": 1,
    "dimensions": {
        "backbone": {"type": "categorical", "choices": ["vjepa2", "dinov2_b"], "default": "vjepa2"},
        "seq_len": {"type": "int", "choices": [4, 8, 12], "default": 8},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "default": 0.01},
        "epochs": {"type": "int", "choices": [3, 5, 8], "default": 5},
        "seed": {"type": "int", "low": 0, "high": 1000, "default": 0, "search": False},
    },
}


def docs_worker() -> str:
    text = (REPO / "docs" / "verification.md").read_text()
    m = re.search(r"<!-- minimal-worker:begin -->\n```python\n(.*?)```\n<!-- minimal-worker:end -->", text, re.S)
    assert m, "docs/verification.md has no minimal worker block"
    return m.group(1)


def use_worker(layout, path, source: str) -> None:
    path.write_text(source)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["worker"] = {"command": [sys.executable, str(path)], "mode": "cold"}
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))


def submit_and_run(layout, tmp_path, ideas, name):
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(ideas))
    run_orze("submit", str(f), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", "--no-agents", root=layout.root)


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("custom")
    layout = make_research_dir(tmp / "r", backbones=("vjepa2", "dinov2_b"))
    layout.space_config.write_text(yaml.safe_dump(SPACE, sort_keys=False))
    source = docs_worker()
    use_worker(layout, tmp / "worker.py", source)
    submit_and_run(layout, tmp, [{"learning_rate": 0.003, "seed": 1}, {"learning_rate": 0.03, "seed": 2},
                                 {"backbone": "dinov2_b", "learning_rate": 0.3, "seed": 3}], "honest")
    honest = read_rows(layout.leaderboard)
    before = [r["id"] for r in ranked(honest)]
    line = "metric, best_epoch, w, b = best\n"
    assert source.count(line) == 1
    for value, seed in (('float("nan")', 4), ("1.7", 5)):
        use_worker(layout, tmp / f"worker_{seed}.py", source.replace(line, line + f"metric = {value}\n"))
        submit_and_run(layout, tmp, [{"learning_rate": 0.01, "seed": seed}], f"bad{seed}")
    return layout, honest, before


def test_docs_worker_is_compliant(custom):
    _, honest, _ = custom
    assert len(honest) == 3
    for r in honest:
        assert r["status"] == "done", r.get("error")
        v = r["verification"]
        assert v["level"] == "self-reported" and v["checks_passed"] == v["checks_total"] >= 9


def test_nan_and_out_of_range_metrics_stay_off_the_ranking(custom):
    layout, honest, before = custom
    rows = read_rows(layout.leaderboard)
    bad = rows[3:]
    assert len(bad) == 2 and all(r["status"] == "misconfigured" for r in bad)
    assert any(f.startswith("metric: val_ap = nan is not a finite number") for f in bad[0]["error"]["findings"])
    assert any(f.startswith("metric: val_ap = 1.7 is not a finite number in [0, 1]")
               for f in bad[1]["error"]["findings"])
    shown = json.loads(run_orze("leaderboard", "--json", root=layout.root).stdout)
    assert [r["id"] for r in shown] == before
    best = max(honest, key=lambda r: r["metric"])
    status = json.loads(run_orze("status", "--json", root=layout.root).stdout)
    assert status["best"]["id"] == best["id"] and status["misconfigured"] == 2
    assert status["verification"] == {"self-reported": 3}
    text = run_orze("status", root=layout.root).stdout
    assert f"best {best['id']}" in text and "verified self-reported" in text
    table = run_orze("leaderboard", root=layout.root).stdout
    assert "self-reported" in table


# --- pure checks -------------------------------------------------------------------------------

GOOD = {"metric": 0.7, "test_metric": 0.6, "selection": {"split": "val", "best_epoch": 2},
        "history": [{"val_ap": 0.5}, {"val_ap": 0.7}, {"val_ap": 0.65}]}


def findings(metrics, spec=MetricSpec(), labels=None):
    return metric_checks(metrics, spec, labels).findings


def test_metric_integrity_cases():
    assert findings(GOOD) == []
    assert findings({**GOOD, "metric": float("nan")})[0].startswith("metric: val_ap = nan")
    assert findings({**GOOD, "metric": 1.7})[0].startswith("metric: val_ap = 1.7 is not")
    assert findings({**GOOD, "metric": 0.65})[0].startswith("metric: val_ap = 0.65 but the history")
    assert findings({**GOOD, "test_metric": 0.7})[0].startswith("test_metric: equals val_ap exactly")
    assert findings({**GOOD, "metric": 1.0, "test_metric": 1.0,
                     "history": [{"val_ap": 0.5}, {"val_ap": 1.0}]}) == []   # a perfect score on both
    missing = findings({**GOOD, "history": [{"val_ap": 0.5}, {"loss": 0.1}, {"val_ap": 0.65}]})
    assert missing and missing[0].startswith("metric: history has no numeric 'val_ap' at epoch(s) 2")
    assert findings({**GOOD, "history": []})[0].startswith("metric: history is missing or empty")
    assert findings({**GOOD, "test_metric": float("inf")})[0].startswith("test_metric: inf")


def test_metric_spec_is_a_parameter():
    spec = MetricSpec(name="val_loss", history_key="val_loss", low=0.0, high=math.inf, direction="min")
    m = {"metric": 0.3, "selection": {"split": "val", "best_epoch": 2},
         "history": [{"val_loss": 0.5}, {"val_loss": 0.3}, {"val_loss": 0.4}]}
    assert findings(m, spec) == []
    assert findings({**m, "selection": {"split": "val", "best_epoch": 3}}, spec)[0].startswith(
        "selection: chose epoch 3 but the val_loss optimum")


def test_provenance_against_the_daemons_hashes():
    labels = {"val": "v" * 16, "test": "t" * 16}
    prov = {"metric": {"labels_sha": "v" * 16}, "test_metric": {"labels_sha": "t" * 16}}
    assert findings({**GOOD, "provenance": prov}, labels=labels) == []
    swapped = {"metric": {"labels_sha": "t" * 16}, "test_metric": {"labels_sha": "t" * 16}}
    out = findings({**GOOD, "provenance": swapped}, labels=labels)
    assert any(f.startswith("provenance: metric and test_metric were computed on the same rows") for f in out)
    assert any(f.startswith("provenance: val_ap was computed on rows") for f in out)


def test_ranking_ignores_non_finite_metrics_and_keeps_the_order():
    rows = [{"id": f"r{i}", "status": "done", "metric": m} for i, m in enumerate([0.5, 0.9, 0.7, 0.6])]
    want = [r["id"] for r in ranked(rows)]
    assert want == ["r1", "r2", "r3", "r0"]
    for bad in (float("nan"), float("inf"), float("-inf"), True):
        mixed = rows[:2] + [{"id": "bad", "status": "done", "metric": bad}] + rows[2:]
        assert [r["id"] for r in ranked(mixed)] == want, bad
