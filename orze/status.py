"""The campaign's state in numbers (pure over files it reads once): what `orze status` shows."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any

from orze.layout import Layout
from orze.store import queue
from orze.store.leaderboard import ranked, read_rows

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


def gather(layout: Layout, now: float | None = None) -> dict[str, Any]:
    now = now or time.time()
    rows = read_rows(layout.leaderboard)
    statuses = Counter(r.get("status") for r in rows)
    best = ranked(rows)[:1]
    nodes = []
    for p in sorted(layout.nodes.glob("*.json")) if layout.nodes.exists() else []:
        try:
            n = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        n["alive"] = (now - n.get("updated_at", 0)) < NODE_FRESH_S and not n.get("stopped")
        nodes.append(n)
    failures = [r for r in rows if r.get("status") == "failed"][-10:]
    misconfigured = [r for r in rows if r.get("status") == "misconfigured"][-10:]
    startup = [r["startup_s"] for r in rows if isinstance(r.get("startup_s"), (int, float))]
    overheads = overhead_by_mode(rows[-OVERHEAD_WINDOW:])
    from orze.agents.host import read_states
    from orze.agents.ledger import summarise

    agents = {name: t.as_dict() for name, t in summarise(layout).items()}
    for name, state in read_states(layout).items():
        agents.setdefault(name, {"agent": name})["host"] = state
    return {
        "agents": agents,
        "queue": queue.depth(layout),
        "inbox": _count(layout.inbox),
        "rejected": _count(layout.rejected),
        "done": statuses.get("done", 0),
        "failed": statuses.get("failed", 0),
        "misconfigured": statuses.get("misconfigured", 0),
        "best": best[0] if best else None,
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
