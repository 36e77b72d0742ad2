"""The worker's side of verdicts (orze.worker.progress) over real files: at an epoch the rule may
prune at, the worker waits for the daemon's verdict on it (judged.json reaching the epoch, or
prune.json) at most `await_s`; no judged.json, await_s 0, an epoch before `next` or the last epoch
mean no wait. The daemon's side is played by a thread writing the files as the pruner does."""

import json
import threading
import time

from orze.layout import RUN_JUDGED, RUN_PROGRESS, RUN_PRUNE
from orze.store.atomic import atomic_write_json
from orze.worker.progress import ProgressReporter


def _judged(run_dir, epoch, next_epoch, await_s):
    atomic_write_json(run_dir / RUN_JUDGED, {"epoch": epoch, "next": next_epoch, "await_s": await_s}, durable=False)


def _later(delay, fn, *args):
    t = threading.Timer(delay, fn, args)
    t.start()
    return t


def test_no_judged_file_means_no_wait(tmp_path):
    notified = []
    rep = ProgressReporter(tmp_path, notify=notified.append)
    assert rep.epoch({"epoch": 1, "val_ap": 0.5}) is False
    assert rep.waited_s == 0 and notified == [1]
    assert json.loads((tmp_path / RUN_PROGRESS).read_text()) == {"epoch": 1, "val_ap": 0.5}


def test_waits_for_the_verdict_on_this_epoch_and_goes_on(tmp_path):
    _judged(tmp_path, 1, 2, 30)
    rep = ProgressReporter(tmp_path)
    t = _later(0.3, _judged, tmp_path, 2, 3, 30)
    assert rep.epoch({"epoch": 2, "val_ap": 0.5}) is False
    t.join()
    assert 0.25 <= rep.waited_s < 5 and rep.late == []


def test_a_stop_requested_while_waiting_lands_at_this_epoch(tmp_path):
    _judged(tmp_path, 1, 2, 30)
    rep = ProgressReporter(tmp_path)
    t = _later(0.2, atomic_write_json, tmp_path / RUN_PRUNE, {"epoch": 2, "reason": "r"})
    assert rep.epoch({"epoch": 2, "val_ap": 0.1}) is True
    t.join()
    assert rep.summary()["pruned"] == {"stopped_after_epoch": 2, "request": {"epoch": 2, "reason": "r"}}


def test_the_wait_is_bounded_by_await_s(tmp_path):
    _judged(tmp_path, 1, 2, 0.3)
    rep = ProgressReporter(tmp_path)
    t0 = time.monotonic()
    assert rep.epoch({"epoch": 2, "val_ap": 0.5}) is False
    assert 0.3 <= time.monotonic() - t0 < 3 and rep.late == [2]


def test_no_wait_before_next_at_zero_or_on_the_last_epoch(tmp_path):
    for judged, entry, last in (((1, 3, 30), 2, False),     # the rule cannot prune at epoch 2
                                ((1, 2, 0), 2, False),      # await_verdict_s 0
                                ((1, 2, 30), 2, True)):     # the schedule's last epoch
        d = tmp_path / f"{judged}-{last}"
        d.mkdir()
        _judged(d, *judged)
        rep = ProgressReporter(d)
        t0 = time.monotonic()
        assert rep.epoch({"epoch": entry, "val_ap": 0.5}, last=last) is False
        assert time.monotonic() - t0 < 1 and rep.late == []


def test_an_unreadable_judged_file_is_never_waited_on(tmp_path):
    (tmp_path / RUN_JUDGED).write_text('{"epoch": "x"')
    rep = ProgressReporter(tmp_path)
    t0 = time.monotonic()
    assert rep.epoch({"epoch": 2, "val_ap": 0.5}) is False and time.monotonic() - t0 < 1
