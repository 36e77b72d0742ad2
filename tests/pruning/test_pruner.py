"""The daemon's pruner over real files and no processes: it reads its running runs' progress
incrementally, judges each new epoch against recorded comparable curves from the leaderboard,
writes prune.json once and emits one event; protected runs and a disabled pruner stop nothing."""

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from orze.config import ConfigError, ProjectConfig, load_project
from orze.daemon.pruner import Pruner, check_keys
from orze.layout import RUN_JUDGED, RUN_PROGRESS, RUN_PRUNE, Layout
from orze.space import load_space
from orze.store.leaderboard import append_row
from orze.vocab import EventKind
from tests.conftest import REPO

CFG = {"epochs": 5, "scheduler": "cosine", "backbone": "vjepa2"}


@dataclass
class Entry:
    id: str
    config: dict
    meta: dict = field(default_factory=dict)


@dataclass
class Run:
    entry: Entry
    run_dir: Path


def _setup(tmp_path, settings=None, rows=4, curve=(0.6, 0.7, 0.8, 0.85, 0.9)):
    layout = Layout.at(tmp_path).ensure()
    for i in range(rows):
        append_row(layout, {"id": f"r{i}", "status": "done", "config": dict(CFG), "curve": list(curve)})
    events = []
    project = ProjectConfig.model_validate({"pruning": {"warmup_epochs": 1, "min_comparable": 4, **(settings or {})}})
    pruner = Pruner(layout, project, _space(), lambda kind, **f: events.append((kind, f)), "n1")
    return layout, pruner, events


def _space():
    return load_space(REPO / "configs" / "space.yaml")


def _run(layout, rid, config=None, meta=None):
    d = layout.run_dir(rid)
    d.mkdir(parents=True, exist_ok=True)
    return Run(Entry(rid, dict(config or CFG), meta or {}), d)


def _epoch(run, epoch, value, torn=False):
    line = json.dumps({"epoch": epoch, "val_ap": value}) + ("" if torn else "\n")
    with open(run.run_dir / RUN_PROGRESS, "a") as f:
        f.write(line)


def test_hopeless_run_is_asked_to_stop_once(tmp_path):
    layout, pruner, events = _setup(tmp_path)
    bad, good = _run(layout, "bad"), _run(layout, "good")
    for r in (bad, good):
        _epoch(r, 1, 0.1 if r is bad else 0.65)
    pruner.tick([bad, good])
    assert not events and not (bad.run_dir / RUN_PRUNE).exists()      # epoch 1 is warm-up
    _epoch(bad, 2, 0.2)
    _epoch(good, 2, 0.75)
    _epoch(bad, 3, 0.3, torn=True)     # still being written: not read yet
    pruner.tick([bad, good])
    request = json.loads((bad.run_dir / RUN_PRUNE).read_text())
    assert request["epoch"] == 2 and request["rule"] == "median" and request["node"] == "n1"
    assert not (good.run_dir / RUN_PRUNE).exists()
    assert [(k, f["id"], f["epoch"]) for k, f in events] == [(EventKind.PRUNE_REQUESTED, "bad", 2)]
    with open(bad.run_dir / RUN_PROGRESS, "a") as f:
        f.write("\n")
    _epoch(bad, 4, 0.1)
    pruner.tick([bad, good])
    assert len(events) == 1                                            # asked once
    pruner.tick([good])
    assert set(pruner.watched) == {"good"}                             # forgets finished runs


def test_epochs_read_late_are_judged_in_order(tmp_path):
    layout, pruner, events = _setup(tmp_path)
    r = _run(layout, "late")
    for e, v in enumerate((0.7, 0.9, 0.1, 0.1), 1):
        _epoch(r, e, v)
    pruner.tick([r])
    assert events == []   # its best so far (0.9 at epoch 2) reaches the median at 3 and 4
    r2 = _run(layout, "late2")
    for e, v in enumerate((0.5, 0.5, 0.5, 0.5), 1):
        _epoch(r2, e, v)
    pruner.tick([r2])
    assert [f["epoch"] for _, f in events] == [2]   # judged at the first epoch that fails


def test_comparable_runs_come_from_new_leaderboard_rows_and_keys(tmp_path):
    layout, pruner, events = _setup(tmp_path, rows=3)
    other = _run(layout, "other", config={**CFG, "scheduler": "step"})
    r = _run(layout, "r")
    for run in (r, other):
        _epoch(run, 1, 0.1)
        _epoch(run, 2, 0.1)
    pruner.tick([r, other])
    assert events == []                                                # 3 comparable < 4
    append_row(layout, {"id": "r9", "status": "done", "config": dict(CFG), "curve": [0.6, 0.7, 0.8]})
    append_row(layout, {"id": "f1", "status": "failed", "config": {**CFG, "scheduler": "step"}, "curve": [0.9] * 5})
    _epoch(r, 3, 0.1)
    _epoch(other, 3, 0.1)
    pruner.tick([r, other])
    assert [f["id"] for _, f in events] == ["r"]                       # `other` is not comparable


def test_protected_and_disabled(tmp_path):
    layout, pruner, events = _setup(tmp_path)
    never = _run(layout, "never", meta={"prune": "never"})
    rep = _run(layout, "rep", meta={"source": "replicate"})
    for r in (never, rep):
        _epoch(r, 1, 0.1)
        _epoch(r, 2, 0.1)
    pruner.tick([never, rep])
    assert events == [] and not (never.run_dir / RUN_PRUNE).exists()
    layout2, off, events2 = _setup(tmp_path / "b", settings={"enabled": False})
    r = _run(layout2, "r")
    _epoch(r, 1, 0.1)
    _epoch(r, 2, 0.1)
    off.tick([r])
    assert events2 == [] and not (r.run_dir / RUN_PRUNE).exists()


def test_rule_setting_is_wired(tmp_path):
    # successive halving at rungs 1, 3 (η 3): at epoch 2 nothing is judged, at 3 the run is cut
    layout, pruner, events = _setup(tmp_path, settings={"rule": "successive_halving", "warmup_epochs": 0})
    r = _run(layout, "r")
    _epoch(r, 1, 0.9)
    _epoch(r, 2, 0.0)
    pruner.tick([r])
    assert events == []
    _epoch(r, 3, 0.5)
    pruner.tick([r])
    assert [(f["epoch"], f["rule"]) for _, f in events] == [(3, "successive_halving")]


def test_unknown_comparable_key_is_a_clear_error():
    project = ProjectConfig.model_validate({"pruning": {"comparable_by": ["epochs", "backbon"]}})
    with pytest.raises(ConfigError, match=r"orze.yaml: pruning.comparable_by: 'backbon'.*allowed: backbone"):
        check_keys(project, _space(), "configs/orze.yaml")
    # the default keeps the keys a (custom task's) space has
    small = _space().model_copy(update={"dimensions": {k: v for k, v in _space().dimensions.items()
                                                       if k != "scheduler"}})
    assert check_keys(ProjectConfig(), small, "x") == ["epochs"]
    assert check_keys(ProjectConfig(), _space(), "x") == ["epochs", "scheduler"]
    d = Path(tempfile.mkdtemp())
    (d / "configs").mkdir()
    (d / "configs" / "orze.yaml").write_text(yaml.safe_dump({"pruning": {"rul": "median"}}))
    with pytest.raises(ConfigError, match=r"orze.yaml: pruning.rul: Extra inputs are not permitted"):
        load_project(Layout.at(d))
    (d / "configs" / "orze.yaml").write_text(yaml.safe_dump({"pruning": {"rule": "asha"}}))
    with pytest.raises(ConfigError, match=r"pruning.rule: .*'median' or 'successive_halving'"):
        load_project(Layout.at(d))


def _judged(run):
    return json.loads((run.run_dir / RUN_JUDGED).read_text())


def test_verdicts_are_announced_for_the_worker_to_await(tmp_path):
    layout, pruner, events = _setup(tmp_path, settings={"await_verdict_s": 7.5})
    good = _run(layout, "good")
    pruner.tick([good])     # watched before its first epoch: the worker knows a verdict will come
    assert _judged(good) == {"epoch": 0, "next": 2, "await_s": 7.5}   # epoch 1 is warm-up
    _epoch(good, 1, 0.65)
    pruner.tick([good])
    assert _judged(good) == {"epoch": 1, "next": 2, "await_s": 7.5}
    _epoch(good, 2, 0.75)
    pruner.tick([good])
    assert _judged(good)["epoch"] == 2 and pruner.judging()
    bad = _run(layout, "bad")
    for e in (1, 2):
        _epoch(bad, e, 0.1)
    pruner.tick([good, bad])
    assert (bad.run_dir / RUN_PRUNE).exists()
    assert not (bad.run_dir / RUN_JUDGED).exists()     # a stop is prune.json, never a "go on"
    pruner.tick([bad])
    assert not pruner.judging()                        # the only run left has been asked to stop


def test_no_verdict_is_announced_for_runs_never_judged(tmp_path):
    layout, pruner, _ = _setup(tmp_path)
    never = _run(layout, "never", meta={"prune": "never"})
    pruner.tick([never])
    assert not (never.run_dir / RUN_JUDGED).exists() and not pruner.judging()
    layout2, off, _ = _setup(tmp_path / "b", settings={"enabled": False})
    r = _run(layout2, "r")
    off.tick([r])
    assert not (r.run_dir / RUN_JUDGED).exists() and not off.judging()


def test_successive_halving_announces_its_next_rung(tmp_path):
    layout, pruner, _ = _setup(tmp_path, settings={"rule": "successive_halving", "warmup_epochs": 0,
                                                   "await_verdict_s": 0})
    r = _run(layout, "r")
    _epoch(r, 1, 0.9)
    pruner.tick([r])
    assert _judged(r) == {"epoch": 1, "next": 3, "await_s": 0}      # rungs 1, 3, 9: no wait at epoch 2


def test_running_runs_on_other_nodes_count_without_any_run_directory_scan(tmp_path):
    # successive halving (rung 1): nothing recorded yet; four runs in flight on node n2, one on n1
    layout, n1, events = _setup(tmp_path, rows=0, settings={"rule": "successive_halving", "warmup_epochs": 0})
    project = ProjectConfig.model_validate({"pruning": {"rule": "successive_halving", "warmup_epochs": 0,
                                                        "min_comparable": 4}})
    n2 = Pruner(layout, project, _space(), lambda kind, **f: None, "n2")
    elsewhere = [_run(layout, f"e{i}") for i in range(4)]
    for i, r in enumerate(elsewhere):
        _epoch(r, 1, 0.8 + i / 100)
    n2.tick(elsewhere)
    feed = [json.loads(line) for line in layout.node_curves("n2").read_text().splitlines()]
    assert [(f["id"], f["epoch"]) for f in feed] == [(f"e{i}", 1) for i in range(4)]
    mine = _run(layout, "mine")
    _epoch(mine, 1, 0.1)
    n1.tick([mine])
    assert [(f["id"], f["epoch"]) for _, f in events] == [("mine", 1)]   # judged against n2's runs
    assert "top 1 of 5" in json.loads((mine.run_dir / RUN_PRUNE).read_text())["reason"]


def test_in_flight_curves_never_count_for_the_median_and_give_way_to_the_row(tmp_path):
    layout, n1, events = _setup(tmp_path, rows=0)
    project = ProjectConfig.model_validate({"pruning": {"warmup_epochs": 1, "min_comparable": 4}})
    n2 = Pruner(layout, project, _space(), lambda kind, **f: None, "n2")
    elsewhere = [_run(layout, f"e{i}") for i in range(4)]
    for r in elsewhere:
        _epoch(r, 1, 0.9)
        _epoch(r, 2, 0.9)
    n2.tick(elsewhere)
    mine = _run(layout, "mine")
    _epoch(mine, 1, 0.1)
    _epoch(mine, 2, 0.1)
    n1.tick([mine])
    assert events == []                       # Optuna's median reads completed runs only
    assert len(n1.index.comparable(CFG, exclude="mine")) == 4
    append_row(layout, {"id": "e0", "status": "done", "config": dict(CFG), "curve": [0.9, 0.9, 0.5]})
    n1.tick([mine])
    curves = n1.index.comparable(CFG, exclude="mine")
    assert len(curves) == 4 and sum(c.completed for c in curves) == 1   # e0's row replaced its flight
