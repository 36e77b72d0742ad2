"""Recording a finished attempt: classify it, verify it, write result.json, append the leaderboard.

result.json in the run directory is the source of truth; the leaderboard row is the same object.
A run is recorded exactly once: the row is appended only if no row with its id is on the
leaderboard (checked under the leaderboard lock), and a node that recovers a run with a result.json
appends its row if a crash came between the two. `orze leaderboard --rebuild` regenerates the file
from the result.json files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orze.features.store import SPLITS, FeatureStoreError, read_clips, split_hash
from orze.layout import (RUN_EFFECTIVE, RUN_FAILURE, RUN_LOG, RUN_METRICS, RUN_OUTPUT, RUN_RECORDED,
                         RUN_RESULT, Layout)
from orze.store.atomic import atomic_write_json
from orze.store.claims import create_exclusive
from orze.store.leaderboard import Tail, append_once
from orze.store.queue import Entry
from orze.daemon.expect import feature_expectations, run_context, split_expectations
from orze.daemon.verify import verify_run

# Failure classes that a plain retry may cure; the rest fail fast (or are healed, see heal).
TRANSIENT = {"crash", "killed"}


def tail(path: Path, lines: int = 30) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def classify(run_dir: Path, returncode: int | None, reason: str | None = None) -> dict[str, Any]:
    """Failure class and message from failure.json, the exit status and the log."""
    if reason in ("timeout", "stalled"):
        return {"class": reason, "message": f"worker {reason}"}
    try:
        failure = json.loads((run_dir / RUN_FAILURE).read_text())
        if isinstance(failure, dict) and "class" in failure:
            return {"class": failure["class"], "message": failure.get("message", "")}
    except (OSError, ValueError):
        pass
    out = (tail(run_dir / RUN_OUTPUT, 50) + "\n" + tail(run_dir / RUN_LOG, 50)).lower()
    if "out of memory" in out or "cuda oom" in out or returncode == -9 and "memory" in out:
        return {"class": "oom", "message": "out of memory"}
    if "nan" in out and "loss" in out:
        return {"class": "nan_loss", "message": "non-finite loss"}
    if returncode is not None and returncode < 0:
        return {"class": "killed", "message": f"worker killed by signal {-returncode}"}
    if returncode == 0:
        return {"class": "no_metrics", "message": f"worker exited 0 without {RUN_METRICS}"}
    return {"class": "crash", "message": f"worker exited with status {returncode}"}


def expected_split_hashes(layout: Layout) -> dict[str, str] | None:
    """The daemon's own reading of features/clips.csv (independent of the worker's code): each
    split's clip-id hash, or None if there is no clips.csv (a custom task). A clip listed in two
    splits makes every run's check fail, as it should."""
    if not layout.clips_csv.exists():
        return None
    try:
        clips = read_clips(layout.clips_csv)
    except FeatureStoreError:
        return None
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    for c in clips:
        ids[c.split].append(c.clip_id)
    if len({c.clip_id for c in clips}) != len(clips):
        return {s: "clips.csv lists a clip in more than one split" for s in SPLITS}
    return {s: split_hash(v) for s, v in ids.items()}


def build_row(entry: Entry, status: str, metrics: dict[str, Any] | None, node: str, slot: int,
              started_at: float, finished_at: float, error: Any, attempts: int) -> dict[str, Any]:
    m = metrics or {}
    meta = entry.meta
    return {
        "id": entry.id, "fingerprint": entry.fingerprint, "status": status,
        "metric_name": m.get("metric_name", "val_ap"), "metric": m.get("metric"),
        "test_metric": m.get("test_metric"), "val_auc": m.get("val_auc"), "test_auc": m.get("test_auc"),
        "config": entry.config, "idea_name": meta.get("idea_name"), "agent": meta.get("agent"),
        "model": meta.get("model"), "source": meta.get("source", "human"), "parent": meta.get("parent"),
        "priority": entry.priority, "node": node, "slot": slot, "admitted_at": entry.admitted_at,
        "started_at": started_at, "finished_at": finished_at,
        "duration_s": round(finished_at - started_at, 3), "epochs_run": m.get("epochs_run"),
        "seed": entry.config.get("seed"), "error": error, "attempts": attempts,
        "startup_s": m.get("startup_s"), "seconds_per_epoch": m.get("seconds_per_epoch"),
        "peak_memory_mb": m.get("peak_memory_mb"), "device": m.get("device"),
        "timings": _timings(m, entry, started_at, finished_at),
        "near_duplicate_of": entry.near_duplicate_of,
        "history": entry.history,
    }


def _timings(m: dict[str, Any], entry: Entry, claimed_at: float, finished_at: float) -> dict[str, Any]:
    """The worker's timings plus the daemon's: queue wait, and the overhead of the attempt (its
    wall time not spent in training epochs: start-up, data, final evaluation, recording)."""
    t = dict(m.get("timings") or {}) if isinstance(m.get("timings"), dict) else {}
    t["queue_wait_s"] = round(claimed_at - entry.admitted_at, 3) if entry.admitted_at else None
    train_s = t.get("train_s")
    if isinstance(train_s, (int, float)):
        t["overhead_s"] = round(max(0.0, finished_at - claimed_at - train_s), 3)
    return t


def load_outputs(run_dir: Path) -> tuple[dict | None, dict | None]:
    def _load(name: str) -> dict | None:
        try:
            data = json.loads((run_dir / name).read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None
    return _load(RUN_METRICS), _load(RUN_EFFECTIVE)


def judge_success(layout: Layout, entry: Entry, metrics: dict, effective: dict | None,
                  require_effective: bool) -> tuple[str, Any, dict[str, Any]]:
    """(status, error, verification summary: level and checks passed, for the row)."""
    builtin, spec = run_context(layout)
    splits = split_expectations(layout) or {}
    v = verify_run(entry.config, effective, metrics, splits.get("split_hashes"), require_effective,
                   builtin=builtin, expect={**splits, **feature_expectations(layout, effective)}, spec=spec)
    if not isinstance(metrics.get("metric"), (int, float)):
        return "failed", {"class": "no_metric", "message": "metrics.json has no numeric 'metric'"}, v.summary()
    if v.findings:
        return "misconfigured", {"class": "misconfigured", "findings": v.findings}, v.summary()
    return "done", None, v.summary()


def record(layout: Layout, row: dict[str, Any], tail: Tail) -> bool:
    """Write result.json, then append the leaderboard row exactly once (checked under the
    leaderboard lock), then mark the run `recorded`. False if its row was on the leaderboard
    already. A crash between the steps is repaired by whoever recovers the run: result.json
    exists, so the row is appended if it is missing (never twice)."""
    run_dir = layout.run_dir(row["id"])
    atomic_write_json(run_dir / RUN_RESULT, row)
    appended = append_once(layout, row, tail)
    create_exclusive(run_dir / RUN_RECORDED, f"{time.time()}\n".encode())
    return appended
