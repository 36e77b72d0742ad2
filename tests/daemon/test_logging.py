"""What was recovered from or degraded is logged per module, and `orze run --log-level` decides
what the user sees; the display renders events in one place."""

import logging

import pynvml
from rich.console import Console

from orze.daemon.display import Display, render_event
from orze.daemon.slots import detect_gpus
from orze.store.leaderboard import Tail, read_rows
from orze.vocab import EventKind
from tests.conftest import make_research_dir, run_orze


def test_broken_nvml_is_a_warning_not_a_silent_cpu_node(monkeypatch, caplog):
    def broken():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", broken)
    with caplog.at_level(logging.INFO, logger="orze"):
        assert detect_gpus() == []
    (rec,) = [r for r in caplog.records if r.name == "orze.daemon.slots"]
    assert rec.levelname == "WARNING" and "CPU slots" in rec.getMessage()


def test_a_garbled_leaderboard_line_is_skipped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "leaderboard.jsonl"
    path.write_text('{"id": "a", "status": "done"}\nnot json at all\n{"id": "b", "status": "done"}\n')
    with caplog.at_level(logging.WARNING, logger="orze"):
        assert [r["id"] for r in read_rows(path)] == ["a", "b"]
        assert [r["id"] for r in Tail(path).new_rows()] == ["a", "b"]
    assert sum("skipped a line" in r.getMessage() for r in caplog.records) == 2


def test_every_run_transition_renders_one_sentence_naming_the_run():
    transitions = [EventKind.STARTED, EventKind.FINISHED, EventKind.REQUEUED, EventKind.RELEASED,
                   EventKind.LEASE_LOST, EventKind.LEASE_BROKEN, EventKind.RECORDED_ON_RECOVERY,
                   EventKind.REQUEUE_FAILED, EventKind.ADMITTED]
    for kind in transitions:
        text = render_event({"event": str(kind), "id": "RUN-1", "status": "done", "metric": 0.5,
                             "metric_name": "val_ap", "duration_s": 1.0, "reason": "r"})
        assert text and "RUN-1" in text, kind
    assert "MISCONFIGURED: pooling" in render_event({"event": "finished", "id": "x", "status": "misconfigured",
                                                     "findings": ["pooling: requested attention, ran mean"]})
    assert render_event({"event": "node_stopped"}) is None


def test_display_shows_log_records_at_the_chosen_level():
    console = Console(file=open("/dev/null", "w"), force_terminal=False)
    shown = []
    display = Display(console=console)
    display.line = lambda message, always=False: shown.append(message)
    display.capture_logs(logging.WARNING)
    try:
        logging.getLogger("orze.daemon.warm").info("worker retired")
        logging.getLogger("orze.daemon.warm").warning("slot runs cold")
    finally:
        display.close()
    logging.getLogger("orze.daemon.warm").warning("after close")
    assert shown == ["warning: slot runs cold"]
    assert logging.getLogger("orze").propagate   # restored: pytest's caplog and other handlers see records again


def test_orze_run_log_level_is_wired(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=())
    with open(layout.leaderboard, "w") as f:
        f.write('garbage\n')
    warned = run_orze("run", "--until-idle", "--log-level", "warning", root=layout.root).stderr
    quiet = run_orze("run", "--until-idle", "--log-level", "error", root=layout.root).stderr
    assert "skipped a line" in warned and "skipped a line" not in quiet


def test_quiet_still_shows_warnings_and_escapes_them(capsys):
    display = Display(quiet=True, console=Console(file=open("/dev/null", "w"), force_terminal=False))
    display.capture_logs(logging.WARNING)
    try:
        logging.getLogger("orze.daemon.pruner").warning("bad name %s", "evil\x1b[2Jname")
        display.event({"event": "started", "id": "RUN-1"})     # events stay quiet
    finally:
        display.close()
    err = capsys.readouterr().err
    assert "warning: bad name evil" in err and "\x1b" not in err and "RUN-1" not in err


def test_orze_run_quiet_shows_warnings(tmp_path):
    layout = make_research_dir(tmp_path / "r", backbones=())
    with open(layout.leaderboard, "w") as f:
        f.write('garbage\n')
    quiet = run_orze("run", "--until-idle", "--quiet", root=layout.root).stderr
    silent = run_orze("run", "--until-idle", "--quiet", "--log-level", "error", root=layout.root).stderr
    assert "skipped a line" in quiet and "skipped a line" not in silent
