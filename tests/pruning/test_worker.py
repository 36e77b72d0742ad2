"""The worker's side of the protocol, with the real built-in worker: one progress line per epoch,
a stop at the epoch boundary when prune.json is there, metrics.json over the completed part,
which verification passes (a shortened history is not a misconfiguration) and which still
catches a real misconfiguration. And the daemon's pure decision that such a run is `pruned`."""

import itertools
import json

import yaml

from orze.daemon.outcome import Evidence, decide, judge
from orze.layout import RUN_PROGRESS, RUN_PRUNE
from orze.pruning.rows import curve, pruned_fields, saved_seconds
from orze.space import check_idea, load_space
from orze.vocab import FailureClass, RunStatus
from orze.worker.train import run_experiment
from tests.worker.helpers import verify_built_in

_n = itertools.count()
FAST = {"epochs": 3, "d_model": 16, "num_heads": 2, "seq_len": 8, "patience": 10}


def _run(layout, request: dict | None, **over):
    config = check_idea(load_space(layout.space_config), {**FAST, **over}).config
    run_dir = layout.run_dir(f"p{next(_n):04d}")
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    if request is not None:
        (run_dir / RUN_PRUNE).write_text(json.dumps(request))
    metrics = run_experiment(run_dir, layout, "cpu")
    effective = json.loads((run_dir / "effective_config.json").read_text())
    progress = [json.loads(line) for line in (run_dir / RUN_PROGRESS).read_text().splitlines()]
    return config, metrics, effective, progress


def test_worker_reports_each_epoch_and_runs_its_course(tiny_dir):
    config, metrics, effective, progress = _run(tiny_dir, None)
    assert [p["epoch"] for p in progress] == [1, 2, 3]
    assert [p["val_ap"] for p in progress] == [h["val_ap"] for h in metrics["history"]]
    assert metrics["pruned"] is None and metrics["epochs_run"] == 3
    assert not verify_built_in(tiny_dir, config, metrics, effective).findings


def test_worker_stops_at_the_boundary_and_its_part_is_verified(tiny_dir):
    request = {"epoch": 1, "rule": "median", "reason": "test"}
    config, metrics, effective, progress = _run(tiny_dir, request)
    assert metrics["epochs_run"] == 1 and len(progress) == 1
    assert metrics["pruned"] == {"stopped_after_epoch": 1, "request": request}
    v = verify_built_in(tiny_dir, config, metrics, effective)
    assert not v.findings, v.findings   # a history shorter than `epochs` is not misconfigured
    ev = Evidence(code=0, stop_reason=None, metrics=metrics, failure=None, findings=v.findings,
                  prune_request=request)
    assert judge(ev).status == RunStatus.PRUNED
    # a real misconfiguration in a pruned run is still caught
    tampered = {**effective, "learning_rate": effective["learning_rate"] * 10}
    v2 = verify_built_in(tiny_dir, config, metrics, tampered)
    assert any(f.startswith("learning_rate") for f in v2.findings)
    rec = judge(Evidence(code=0, stop_reason=None, metrics=metrics, failure=None, findings=v2.findings,
                         prune_request=request))
    assert rec.status == RunStatus.MISCONFIGURED
    # the row's fields: the curve and the estimate of what the stop saved
    fields = pruned_fields(RunStatus.PRUNED, metrics, request, config)
    assert fields["stopped_after_epoch"] == 1 and fields["epoch"] == 1 and fields["epochs_configured"] == 3
    assert fields["saved_s"] == round(2 * metrics["seconds_per_epoch"], 3)
    assert curve(metrics, "val_ap") == [metrics["history"][0]["val_ap"]]


def _ev(**kw):
    base = {"code": 0, "stop_reason": None, "failure": None, "findings": [],
            "metrics": {"metric": 0.5, "pruned": {"stopped_after_epoch": 2}}}
    return Evidence(**{**base, **kw})


def test_outcome_pruned_only_at_the_pruners_request(default_space):
    assert judge(_ev(prune_request={"epoch": 2})).status == RunStatus.PRUNED
    unasked = judge(_ev())
    assert unasked.status == RunStatus.MISCONFIGURED and "never asked" in unasked.error["findings"][0]
    # asked, but the run had already finished its epochs: it ran its course
    assert judge(_ev(prune_request={"epoch": 5}, metrics={"metric": 0.5, "pruned": None})).status == RunStatus.DONE
    # a pruned run that crashed is a failure like any other, and a pruned run is never retried
    assert judge(_ev(code=3, prune_request={"epoch": 1}, failure={"class": "crash"})).status == RunStatus.FAILED
    d = decide(_ev(prune_request={"epoch": 2}, attempt=1), {}, "fp", default_space, max_attempts=3)
    assert d.status == RunStatus.PRUNED
    assert FailureClass.MISCONFIGURED == unasked.error["class"]


def test_saved_seconds_sums_pruned_rows():
    rows = [{"status": "pruned", "pruned": {"saved_s": 10.0}}, {"status": "pruned", "pruned": {"saved_s": None}},
            {"status": "done", "pruned": None}, {"status": "pruned", "pruned": {"saved_s": 2.5}}]
    assert saved_seconds(rows) == 12.5


def test_a_worker_cannot_stop_before_the_judged_epoch():
    early = judge(_ev(prune_request={"epoch": 3}))
    assert early.status == RunStatus.MISCONFIGURED and "before the epoch 3" in early.error["findings"][0]
    assert judge(_ev(prune_request={"epoch": 3}, metrics={"metric": 0.5, "pruned": {}})).status \
        == RunStatus.MISCONFIGURED
