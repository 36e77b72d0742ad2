"""The end of an attempt: its evidence, the decision applied, and the leaderboard row.

`gather` reads what the attempt left (metrics.json, effective_config.json, failure.json) and, for an
attempt that succeeded, runs verification against the daemon's own reading of features/clips.csv;
orze.daemon.outcome decides from that evidence; `conclude` applies the decision through
orze.store.transitions (another attempt, or the row built by `build_row` recorded; result.json is the
source of truth and the row is the same object).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from orze.config import ProjectConfig
from orze.daemon.expect import feature_expectations, run_context, split_expectations, task_expectations
from orze.daemon.outcome import Evidence, Retry, decide
from orze.daemon.verify import verify_run
from orze.layout import RUN_EFFECTIVE, RUN_FAILURE, RUN_LOG, RUN_METRICS, RUN_OUTPUT, RUN_PRUNE, Layout
from orze.pruning import rows as pruning_rows
from orze.space import Space
from orze.store.atomic import read_json_or_none
from orze.store.queue import Entry
from orze.store.transitions import Transitions
from orze.vocab import RunStatus


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


def log_tail(run_dir: Path, lines: int = 20) -> str:
    return tail(run_dir / RUN_LOG, lines) or tail(run_dir / RUN_OUTPUT, lines)


def gather(layout: Layout, project: ProjectConfig, entry: Entry, run_dir: Path, code: int,
           stop_reason: str | None, attempt: int) -> Evidence:
    metrics = read_json_or_none(run_dir / RUN_METRICS)
    ev = Evidence(code=code, stop_reason=stop_reason, metrics=metrics,
                  failure=read_json_or_none(run_dir / RUN_FAILURE), attempt=attempt,
                  prune_request=read_json_or_none(run_dir / RUN_PRUNE))
    if not ev.succeeded:
        return ev
    effective = read_json_or_none(run_dir / RUN_EFFECTIVE)
    builtin, spec = run_context(project)
    splits = split_expectations(layout) or {}
    v = verify_run(entry.config, effective, metrics, splits.get("split_hashes"), require_effective=True,
                   builtin=builtin, expect={**splits, **feature_expectations(layout, effective),
                                                   "task": task_expectations(layout, project)}, spec=spec)
    return replace(ev, findings=v.findings, verification=v.summary())


def conclude(layout: Layout, project: ProjectConfig, transitions: Transitions, space: Space, r, code: int,
             estimate: tuple[float, str] | None, node: str) -> dict[str, Any] | None:
    """Decide and act on a finished attempt `r` (a supervisor.Running this node still owns):
    re-queue it for another attempt (None) or record it (its row)."""
    finished_at = time.time()
    ev = gather(layout, project, r.entry, r.run_dir, code, r.stop_reason, r.attempt)
    decision = decide(ev, r.entry.config, r.entry.fingerprint, space, project.scheduler.max_attempts)
    if isinstance(decision, Retry):
        if transitions.requeue(r.entry, decision.note, decision.healed):
            return None
        decision = decision.fallback   # the healed configuration exists already
    error = decision.error
    if decision.status == RunStatus.FAILED and error is not None:
        error = {**error, "log_tail": log_tail(r.run_dir)}
    row = build_row(r.entry, decision.status, ev.metrics, node, r.slot, r.started_at, finished_at, error,
                    r.attempt)
    row.update(worker_mode=str(r.mode), verification=ev.verification, memory_estimate_mb=None if estimate is None else round(estimate[0], 1),
               memory_estimate_basis=None if estimate is None else estimate[1])
    # pruning (docs/pruning.md): the curve later runs are judged against, and a pruned run's stop
    row.update(curve=pruning_rows.curve(ev.metrics, run_context(project)[1].history_key),
               pruned=pruning_rows.pruned_fields(decision.status, ev.metrics, ev.prune_request, r.entry.config))
    transitions.record(row, **({"pruned": row["pruned"]} if row["pruned"] else {}))
    return row


def build_row(entry: Entry, status: RunStatus, metrics: dict[str, Any] | None, node: str, slot: int,
              started_at: float, finished_at: float, error: Any, attempts: int) -> dict[str, Any]:
    m = metrics or {}
    meta = entry.meta
    return {
        "id": entry.id, "fingerprint": entry.fingerprint, "status": status,
        "metric_name": m.get("metric_name", "val_ap"), "metric": m.get("metric"),
        "test_metric": m.get("test_metric"),
        # ROC AUC alongside (metrics.json's val_roc_auc; val_auc from workers before issue 19)
        "val_auc": m.get("val_roc_auc", m.get("val_auc")), "test_auc": m.get("test_roc_auc", m.get("test_auc")),
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
