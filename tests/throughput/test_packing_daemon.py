"""Memory packing through the real daemon: as many experiments at once as the device's memory
allows by estimate, learned from measured peaks, and never more."""

import sys
import textwrap
import time

import pytest
import yaml

from orze.store.leaderboard import read_rows
from tests.conftest import make_research_dir, run_orze

pytestmark = pytest.mark.slow

# A custom worker that takes 1 s and reports a measured peak of 900 MiB.
WORKER = textwrap.dedent('''
    import json, os, sys, time, yaml
    run = sys.argv[-1]
    config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    time.sleep(1.0)
    effective = dict(config)
    effective["sequence"] = {"train": {"seq_len": config["seq_len"]}, "eval": {"val": {"seq_len": config["seq_len"]}}}
    json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
    json.dump({"metric_name": "val_ap", "metric": 0.5, "test_metric": 0.1, "epochs_run": 1,
               "selection": {"split": "val", "best_epoch": 1}, "history": [{"val_ap": 0.5}],
               "peak_memory_mb": 900.0, "device": "cpu"}, open(os.path.join(run, "metrics.json"), "w"))
''')


def campaign(tmp_path, n, **sched):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "worker.py").write_text(WORKER)
    layout = make_research_dir(tmp_path / "r", backbones=(), project={
        "worker": {"command": [sys.executable, str(tmp_path / "worker.py")]},
        "scheduler": {"cpu_slots": 3, "memory_fraction": 1.0, **sched}})
    layout.clips_csv.unlink()
    (tmp_path / "i.yaml").write_text(yaml.safe_dump([{"seed": s} for s in range(n)]))
    run_orze("submit", str(tmp_path / "i.yaml"), root=layout.root)
    run_orze("run", "--until-idle", "--quiet", root=layout.root)
    rows = read_rows(layout.leaderboard)
    assert len(rows) == n and {r["status"] for r in rows} == {"done"}
    return rows


def concurrency(rows):
    """Largest number of runs in flight at once, and the largest summed estimate at those times."""
    events = sorted([(r["started_at"], 1, r) for r in rows] + [(r["finished_at"], -1, r) for r in rows],
                    key=lambda e: (e[0], e[1]))
    live, most, most_mb = set(), 0, 0.0
    for _, kind, r in events:
        (live.add if kind == 1 else live.discard)(r["id"])
        if kind == 1 and len(live) > 1:
            most_mb = max(most_mb, sum(x["memory_estimate_mb"] for x in rows if x["id"] in live))
        most = max(most, len(live))
    return most, most_mb


def test_packing_fills_slots_while_memory_allows(tmp_path):
    rows = campaign(tmp_path / "a", 3, device_memory_mb=2000, default_peak_mb=600)
    most, most_mb = concurrency(rows)
    assert most == 3 and most_mb == 1800          # 3 × the 600 MiB default fit in 2000
    assert {r["memory_estimate_basis"] for r in rows} == {"default_peak_mb"}


def test_packing_never_oversubscribes_and_learns_measured_peaks(tmp_path):
    rows = campaign(tmp_path / "b", 6, device_memory_mb=2000, default_peak_mb=600)
    most, most_mb = concurrency(rows)
    assert most_mb <= 2000, most_mb
    learned = [r for r in rows if r["memory_estimate_basis"] != "default_peak_mb"]
    assert learned and all(r["memory_estimate_mb"] == pytest.approx(900 * 1.2) for r in learned)
    # Once 1080 MiB is expected per run, two no longer fit in 2000 MiB: those ran one at a time.
    after = [r for r in rows if r["started_at"] >= max(x["finished_at"] for x in rows
                                                       if x["memory_estimate_basis"] == "default_peak_mb")]
    assert after and concurrency(after)[0] == 1


def test_small_device_memory_serialises_the_slots(tmp_path):
    rows = campaign(tmp_path / "c", 3, device_memory_mb=1000, default_peak_mb=600)
    assert concurrency(rows)[0] == 1


def test_waiting_for_memory_sleeps_instead_of_spinning(tmp_path, monkeypatch):
    """Held back by memory with slots free and work queued, the daemon must sleep until a running
    experiment ends, not spin on the queue."""
    from orze.config import load_project
    from orze.daemon.node import Daemon, RunBounds
    from orze.layout import Layout
    from orze.space import load_space
    from tests.conftest import orze_env

    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "worker.py").write_text(WORKER)
    layout = make_research_dir(tmp_path / "r", backbones=(), project={
        "worker": {"command": [sys.executable, str(tmp_path / "worker.py")]},
        "scheduler": {"cpu_slots": 3, "memory_fraction": 1.0, "device_memory_mb": 1000,
                      "default_peak_mb": 600, "poll_s": 0.5}})
    layout.clips_csv.unlink()
    (tmp_path / "i.yaml").write_text(yaml.safe_dump([{"seed": s} for s in range(3)]))
    run_orze("submit", str(tmp_path / "i.yaml"), root=layout.root)
    for k, v in orze_env().items():
        monkeypatch.setenv(k, v)
    daemon = Daemon(Layout.at(layout.root), load_project(layout), load_space(layout.space_config),
                    node="n", bounds=RunBounds(until_idle=True))
    t0 = time.time()
    counters = daemon.run()
    wall = time.time() - t0
    assert counters.done == 3 and concurrency(read_rows(layout.leaderboard))[0] == 1
    # ~3 s of one-at-a-time work: a few passes per event and scan, not thousands.
    assert daemon.passes < 40 * wall, (daemon.passes, wall)
