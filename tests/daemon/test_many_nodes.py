"""Several daemons on one directory, with SIGKILLs of daemons (restarted) and of workers: every
unique idea is completed exactly once, none is lost, every duplicate is refused. This runs
scripts/stress.py at CI size."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stress.py"


def load_stress():
    spec = importlib.util.spec_from_file_location("orze_stress", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_three_daemons_with_kills_complete_each_idea_exactly_once(tmp_path):
    counts = load_stress().stress(tmp_path / "r", daemons=3, ideas=90, duplicates=30, kills=3,
                                  worker_kills=3, timeout_s=240)
    assert counts["daemon_kills"] == 3 and counts["worker_kills"] == 3, counts
    assert counts["double_runs"] == 0 and counts["lost"] == 0, counts
    assert counts["completed"] == counts["done"] == 90, counts
    assert counts["duplicates_refused"] == 30, counts
    assert counts["queue_left"] == 0 and counts["claims_left"] == 0, counts
    assert counts["recovered_runs"] > 0, counts
    assert counts["ok"], counts


def test_warm_workers_under_kills_exactly_once_and_none_outlive_their_daemon(tmp_path):
    """The same with the built-in trainer on warm per-slot workers: kills hit warm processes
    mid-experiment and daemons that own warm processes (which must die with them)."""
    counts = load_stress().stress(tmp_path / "r", daemons=2, ideas=24, duplicates=4, kills=2,
                                  worker_kills=2, timeout_s=300, worker="warm")
    assert counts["daemon_kills"] == 2 and counts["worker_kills"] == 2, counts
    assert counts["double_runs"] == 0 and counts["lost"] == 0, counts
    assert counts["completed"] == counts["done"] + counts["pruned"] == 24, counts
    assert counts["warm_workers_left"] == 0, counts
    assert counts["ok"], counts
