"""A probe worker and an audit that check a campaign's bookkeeping from outside Orze.

`python -m orze.slurm.probe [--sleep S] RUN_DIR` is a custom worker (`worker.command`): it appends
one line to the probe log when it really starts and one when it finishes (single O_APPEND writes,
with its pid, host and Slurm job), sleeps S seconds, and writes metrics.json and
effective_config.json as the worker contract asks. `audit()` reads only that log and the ids
submitted, never Orze's queue, events or leaderboard, and counts what was lost (never finished),
run twice (finished more than once), ran on two workers at once, and how many starts were
interrupted (killed or released by a preemption, then started again: expected, not a duplicate).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable

PROBE_LOG_ENV = "ORZE_PROBE_LOG"


def default_log(root: str | os.PathLike) -> Path:
    return Path(root) / "runs" / "slurm" / "probe.log"


def _append(path: Path, record: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m orze.slurm.probe")
    ap.add_argument("--sleep", type=float, default=1.0, help="seconds of pretend training")
    ap.add_argument("run_dir")
    a = ap.parse_args(argv)
    run = Path(a.run_dir)
    root = os.environ.get("ORZE_ROOT") or str(run.parent.parent.parent)
    log = Path(os.environ.get(PROBE_LOG_ENV) or default_log(root))
    log.parent.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    me = {"id": run.name, "seed": config.get("seed"), "pid": os.getpid(), "host": socket.gethostname(),
          "job": os.environ.get("SLURM_JOB_ID"), "restart": os.environ.get("SLURM_RESTART_COUNT")}
    _append(log, {"event": "start", "t": time.time(), **me})
    time.sleep(a.sleep)
    effective = dict(config)
    effective["sequence"] = {"train": {"seq_len": config.get("seq_len")},
                             "eval": {"val": {"seq_len": config.get("seq_len")}}}
    metric = 0.5 + (int(config.get("seed", 0)) % 100) / 1000
    # the metric is the history's value at the selected epoch (the daemon's metric-integrity check)
    metrics = {"metric_name": "val_ap", "metric": metric, "test_metric": 0.1,
               "selection": {"split": "val", "best_epoch": 1}, "history": [{"val_ap": metric}],
               "epochs_run": 1}
    for name, obj in (("effective_config.json", effective), ("metrics.json", metrics)):
        tmp = run / f".{name}.tmp"
        tmp.write_text(json.dumps(obj))
        os.replace(tmp, run / name)
    _append(log, {"event": "end", "t": time.time(), **me})
    return 0


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    out = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue   # a line torn by a kill mid-write
    return out


def audit(records: Iterable[dict[str, Any]], expected_ids: Iterable[Any], key: str = "seed") -> dict[str, Any]:
    """What the probe log says happened to each expected idea (pure). Ideas are told apart by
    `key` of their configuration (the seed by default: what the submitter chose, not an id Orze
    assigned)."""
    starts: dict[str, list[dict]] = {}
    ends: dict[str, list[dict]] = {}
    for r in records:
        (starts if r.get("event") == "start" else ends).setdefault(r.get(key), []).append(r)
    expected = list(expected_ids)
    lost = [i for i in expected if not ends.get(i)]
    twice = [i for i in expected if len(ends.get(i, [])) > 1]
    # Overlap: an id started again while an earlier start of it was still running (its end, from
    # the same process, comes after the later start): two workers on one idea at once.
    overlapping, interrupted = [], 0
    for i, ss in starts.items():
        ss = sorted(ss, key=lambda r: r["t"])
        for k, a in enumerate(ss):
            end = next((e for e in ends.get(i, []) if (e["pid"], e["host"]) == (a["pid"], a["host"])), None)
            if end is None:
                interrupted += 1 if i in expected else 0   # killed or released before it finished
            if end is not None and any(a["t"] < b["t"] < end["t"] for b in ss[k + 1:]):
                overlapping.append(i)
    return {
        "expected": len(expected),
        "done": sum(1 for i in expected if ends.get(i)),
        "lost": len(lost), "lost_ids": lost,
        "run_twice": len(twice), "run_twice_ids": twice,
        "interrupted_starts": interrupted,
        "overlapping": len(set(overlapping)), "overlapping_ids": sorted(set(overlapping)),
        "unexpected_ids": sorted(set(starts) - set(expected), key=str),
    }


if __name__ == "__main__":
    sys.exit(main())
