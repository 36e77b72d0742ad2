"""The outcome of a finished attempt is a pure decision over its evidence (no processes, no files)."""

import pytest

from orze.daemon.outcome import Evidence, Record, Retry, classify, decide, judge
from orze.space import check_idea, fingerprint
from orze.vocab import FailureClass, RunStatus

GOOD = {"metric": 0.7, "metric_name": "val_ap"}


def canon(space, **kw):
    c = check_idea(space, kw)
    assert c.ok, c.errors
    return c.config


def test_success_verified_is_done_and_findings_make_it_misconfigured():
    assert judge(Evidence(0, None, GOOD, None, findings=[])) == Record(RunStatus.DONE)
    r = judge(Evidence(0, None, GOOD, None, findings=["pooling: requested 'attention', ran 'mean'"]))
    assert r.status == RunStatus.MISCONFIGURED and r.error["findings"] == ["pooling: requested 'attention', ran 'mean'"]


def test_metrics_without_a_numeric_metric_is_a_failure():
    r = judge(Evidence(0, None, {"metric": "high"}, None, findings=[]))
    assert r.status == RunStatus.FAILED and r.error["class"] == FailureClass.NO_METRIC


@pytest.mark.parametrize("ev, cls", [
    (Evidence(-9, "timeout", None, None), FailureClass.TIMEOUT),
    (Evidence(-9, "stalled", None, None), FailureClass.STALLED),
    (Evidence(3, None, None, {"class": "oom", "message": "CUDA out of memory"}), FailureClass.OOM),
    (Evidence(3, None, None, {"class": "nan_loss"}), FailureClass.NAN_LOSS),
    (Evidence(-11, None, None, None), FailureClass.KILLED),
    (Evidence(0, None, None, None), FailureClass.NO_METRICS),
    (Evidence(1, None, None, None), FailureClass.CRASH),
    (Evidence(1, None, None, {"class": "gremlins"}), FailureClass.CRASH),
])
def test_failure_class_comes_from_structured_evidence(ev, cls):
    assert classify(ev)["class"] == cls


def test_no_failure_class_is_read_from_words():
    """A crash whose log is full of 'loss=' and 'nan' (every epoch line, 'maintenance') is a crash:
    classification never sees the log, only failure.json, the stop reason and the exit status."""
    ev = Evidence(1, None, None, None)
    assert classify(ev)["class"] == FailureClass.CRASH
    unknown = classify(Evidence(1, None, None, {"class": "out of memory"}))
    assert unknown["class"] == FailureClass.CRASH and "unknown class" in unknown["message"]


def test_transient_failure_is_retried_as_it_is(default_space):
    config = canon(default_space, seed=1)
    d = decide(Evidence(-9, None, None, None, attempt=1), config, fingerprint(config), default_space, 2)
    assert isinstance(d, Retry) and d.healed is None and d.note["failure"] == "killed"
    assert d.fallback.status == RunStatus.FAILED


def test_oom_is_healed_with_a_valid_config_and_its_new_fingerprint(default_space):
    config = canon(default_space, batch_size=64)
    d = decide(Evidence(3, None, None, {"class": "oom"}), config, fingerprint(config), default_space, 2)
    assert isinstance(d, Retry)
    healed, fp = d.healed
    assert healed["batch_size"] == 32 and fp == fingerprint(healed) and fp != fingerprint(config)
    assert d.note["previous_fingerprint"] == fingerprint(config) and "64 → 32" in d.note["heal"]


def test_no_retry_at_the_bound_on_shutdown_or_when_nothing_heals(default_space):
    config = canon(default_space, batch_size=64)
    fp = fingerprint(config)
    assert isinstance(decide(Evidence(-9, None, None, None, attempt=2), config, fp, default_space, 2), Record)
    assert isinstance(decide(Evidence(-15, "shutdown", None, None), config, fp, default_space, 2), Record)
    d = decide(Evidence(3, None, None, {"class": "invalid_config"}), config, fp, default_space, 2)
    assert d == Record(RunStatus.FAILED, {"class": FailureClass.INVALID_CONFIG, "message": ""})


def test_max_attempts_is_the_bound(default_space):
    config = canon(default_space, seed=3)
    fp = fingerprint(config)
    ev = Evidence(1, None, None, None, attempt=3)
    assert isinstance(decide(ev, config, fp, default_space, 4), Retry)
    assert isinstance(decide(ev, config, fp, default_space, 3), Record)
