"""A full disk never kills the daemon: an OSError while claiming puts the node in a storage-failing
state (no admission, no claims; an event; the heartbeat and `orze status` say so), and it resumes by
itself once a probe write succeeds."""

from __future__ import annotations

import errno
import sys

from orze.config import ProjectConfig
from orze.daemon.heartbeat import snapshot
from orze.daemon.node import Daemon
from orze.daemon.slots import Slot
from orze.layout import Layout
from orze.store import queue
from orze.store.events import read_events
from orze.store.inbox import submit_ideas


def test_claiming_on_a_full_disk_degrades_and_recovers(tmp_path, default_space, monkeypatch):
    layout = Layout.at(tmp_path).ensure()
    project = ProjectConfig()
    project.scheduler.poll_s = 0.01
    project.worker.command = [sys.executable, "-c", "import time; time.sleep(30)"]
    project.admission.require_feature_store = False   # a custom worker with no feature store
    d = Daemon(layout, project, default_space, node="n1", slots=[Slot(0, "cpu")])
    submit_ideas(layout, [{"learning_rate": 0.001}])

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(d.transitions, "start", full)
    d.step()
    assert not d.storage.ok and d.storage.part == "claiming"
    assert queue.depth(layout) == 1, "the idea stays queued"
    kinds = [e["event"] for e in read_events(layout)]
    assert "storage_failing" in kinds
    assert snapshot(d)["storage"]["ok"] is False and "No space" in snapshot(d)["storage"]["error"]
    assert d.finished() is False   # --until-idle waits for the directory rather than giving up

    submit_ideas(layout, [{"learning_rate": 0.002}])
    d._next_admit = 0
    d.step()
    assert any(p.suffix == ".yaml" for p in layout.inbox.iterdir()), "no admission while storage fails"

    monkeypatch.undo()
    d.storage._next_probe = 0
    d._next_admit = 0
    try:
        d.step()
        assert d.storage.ok
        assert "storage_recovered" in [e["event"] for e in read_events(layout)]
        assert not any(p.suffix == ".yaml" for p in layout.inbox.iterdir())
        assert len(d.table.running()) == 1, "claims resume by themselves"
    finally:
        d.shutdown()
    assert queue.depth(layout) == 2
