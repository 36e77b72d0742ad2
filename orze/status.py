"""The campaign's state in numbers (pure over files it reads once): what `orze status` shows."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from orze.layout import Layout
from orze.pruning.rows import pruning_status
from orze.store import queue
from orze.store.atomic import read_json_files
from orze.store.leaderboard import ranked, read_rows
from orze.vocab import RunStatus

NODE_FRESH_S = 120.0


def _count(path) -> int:
    try:
        return sum(1 for n in os.listdir(path) if not n.startswith("."))
    except FileNotFoundError:
        return 0


def throughput(rows: list[dict[str, Any]], window_s: float = 3600.0, now: float | None = None) -> dict[str, float]:
    """Finished experiments per hour: over the last `window_s`, and over the whole campaign."""
    now = now or time.time()
    times = sorted(r["finished_at"] for r in rows if isinstance(r.get("finished_at"), (int, float)))
    if not times:
        return {"recent_per_hour": 0.0, "overall_per_hour": 0.0}
    recent = sum(1 for t in times if t >= now - window_s)
    starts = [r["started_at"] for r in rows if isinstance(r.get("started_at"), (int, float))]
    span = max(times[-1] - (min(starts) if starts else times[0]), 1.0)
    return {"recent_per_hour": recent * 3600.0 / window_s, "overall_per_hour": len(times) * 3600.0 / span}


OVERHEAD_WINDOW = 500


def overhead_by_mode(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per worker mode (warm/cold): runs, mean claim → first training step, mean overhead
    (attempt wall time not spent in training epochs) and mean seconds per epoch."""
    out: dict[str, dict[str, float]] = {}
    groups: dict[str, list[dict]] = {}
    for r in rows:
        t = r.get("timings")
        if isinstance(t, dict) and isinstance(t.get("claim_to_first_step_s"), (int, float)):
            groups.setdefault(str(r.get("worker_mode") or t.get("worker_mode") or "cold"), []).append(t)

    def mean(ts, key):
        vals = [t[key] for t in ts if isinstance(t.get(key), (int, float))]
        return sum(vals) / len(vals) if vals else None
    for mode, ts in sorted(groups.items()):
        out[mode] = {"runs": len(ts), "claim_to_first_step_s": mean(ts, "claim_to_first_step_s"),
                     "overhead_s": mean(ts, "overhead_s"), "seconds_per_epoch": mean(ts, "seconds_per_epoch")}
    return out


def agent_state(host: dict[str, Any], health: dict[str, Any], now: float) -> tuple[str, str]:
    """(state, why) shown for an agent: its circuit (backing off / paused, with the reason) while
    its host runs it, else the host's state (running, finished, failed, stopped (host gone) …)."""
    status = str(host.get("status") or "")
    waiting = health.get("state") in ("backing off", "paused") and (health.get("until") or 0) > now
    if waiting and status in ("running", "waiting", ""):
        left = float(health["until"]) - now
        return f"{health['state']} ({left:.0f}s left)", str(health.get("reason") or "")
    return status, str(host.get("detail") or "") if status not in ("running",) else ""


def agent_status(layout: Layout, rows: list[dict[str, Any]], now: float) -> tuple[dict, dict]:
    """Per-agent totals (ledger), host state, health and notices; and the auto-sweeps' counts."""
    from dataclasses import asdict

    from orze.agents import health as health_mod
    from orze.agents.host import read_states
    from orze.agents.ledger import summarise
    from orze.agents.sweeps import summary as sweep_summary

    lease_s = 60.0
    agents = {name: t.as_dict() for name, t in summarise(layout).items()}
    for name, state in read_states(layout, lease_s).items():
        agents.setdefault(name, {"agent": name})["host"] = state
    for name, a in agents.items():
        h = asdict(health_mod.load(layout, name))
        a["health"] = h
        a["state"], a["why"] = agent_state(a.get("host") or {}, h, now)
    sweeps = sweep_summary(layout)
    try:
        from orze.config import load_project
        cfg = load_project(layout).sweeps
        sweeps.update(enabled=cfg.enabled, max_total=cfg.max_total, per_base=cfg.per_base, top_k=cfg.top_k)
    except Exception:  # noqa: BLE001 - status shows what it can; `orze run` reports a bad config
        pass
    swept = [r for r in rows if r.get("source") == "sweep"]
    sweeps["runs"] = len(swept)
    sweeps["done"] = sum(1 for r in swept if r.get("status") == "done")
    return agents, sweeps


def _task_metric(layout: Layout) -> str | None:
    """task.metric's history key (what `best` is ranked by); None if configs/orze.yaml is invalid."""
    from orze.config import ConfigError, load_project
    try:
        return load_project(layout).task.spec.history_key
    except ConfigError:
        return None


def gather(layout: Layout, now: float | None = None) -> dict[str, Any]:
    now = now or time.time()
    rows = read_rows(layout.leaderboard)
    statuses = Counter(r.get("status") for r in rows)
    best = ranked(rows, _task_metric(layout))[:1]
    nodes = []
    for _, n in read_json_files(layout.nodes):
        n["alive"] = (now - n.get("updated_at", 0)) < NODE_FRESH_S and not n.get("stopped")
        nodes.append(n)
    failures = [r for r in rows if r.get("status") == RunStatus.FAILED][-10:]
    misconfigured = [r for r in rows if r.get("status") == RunStatus.MISCONFIGURED][-10:]
    startup = [r["startup_s"] for r in rows if isinstance(r.get("startup_s"), (int, float))]
    overheads = overhead_by_mode(rows[-OVERHEAD_WINDOW:])
    agents, sweeps = agent_status(layout, rows, now)
    from orze.notify.notifier import read_status as notify_status

    return {
        "agents": agents,
        "sweeps": sweeps,
        "notify": notify_status(layout),
        "queue": queue.depth(layout),
        "inbox": _count(layout.inbox),
        "rejected": _count(layout.rejected),
        **{str(s): statuses.get(s, 0) for s in RunStatus},
        "best": best[0] if best else None,
        "pruning": pruning_status(rows),   # runs pruned and training seconds saved (docs/pruning.md)
        "throughput": throughput(rows, now=now),
        "nodes": nodes,
        "failures": failures,
        "misconfigured_runs": misconfigured,
        # done runs by verification level (rows recorded before levels existed: "unverified")
        "verification": dict(Counter(
            (r["verification"].get("level") if isinstance(r.get("verification"), dict) else None)
            or "unverified" for r in rows if r.get("status") == "done")),
        "mean_startup_s": sum(startup) / len(startup) if startup else None,
        "overhead": overheads,
        "failure_classes": dict(Counter((r.get("error") or {}).get("class") for r in failures
                                        if isinstance(r.get("error"), dict))),
    }
