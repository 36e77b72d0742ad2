"""What the dashboard shows besides the leaderboard, read from the research directory (read-only:
nothing here writes, not even the clock probe the daemon uses, so ages are judged by this host's
clock against the files' mtimes).

Each function reads a handful of small files per request: node heartbeats, the queue's first
entries, the newest rejections, agent states and ledgers (cached by size and mtime), a run's own
directory. Agent ledgers are summarised by orze.agents.ledger; states come from orze.agents.host.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from orze.layout import RUN_CLAIM, RUN_CONFIG, RUN_EFFECTIVE, RUN_HEARTBEAT, RUN_LOG, RUN_METRICS, RUN_OUTPUT, Layout
from orze.store import queue
from orze.store.atomic import read_json_files, read_json_or_none
from orze.store.leaderboard import iter_jsonl

NODE_FRESH_S = 120.0
LIST_LIMIT = 200
LOG_TAIL_BYTES = 32_000


def _age(path: Path, now: float) -> float | None:
    try:
        return max(0.0, now - path.stat().st_mtime)
    except OSError:
        return None


def nodes(layout: Layout, now: float | None = None) -> list[dict[str, Any]]:
    """Every node's last heartbeat with its age and liveness, and each busy slot's lease age."""
    now = time.time() if now is None else now
    out = []
    for p, hb in read_json_files(layout.nodes):
        age = _age(p, now)
        hb["age_s"] = age
        hb["alive"] = age is not None and age < NODE_FRESH_S and not hb.get("stopped")
        for sl in hb.get("slots") or []:
            run = sl.get("run")
            if run:
                d = layout.run_dir(run)
                sl["lease_age_s"] = _age(d / RUN_HEARTBEAT, now) or _age(d / RUN_CLAIM, now)
        out.append(hb)
    return out


def queue_entries(layout: Layout, limit: int = LIST_LIMIT) -> tuple[int, list[dict[str, Any]]]:
    """(depth, the first `limit` entries in scheduling order)."""
    names = queue.list_names(layout)
    out = []
    for name in names[:limit]:
        e = queue.read(layout, name)
        if e is not None:
            out.append({"id": e.id, "priority": e.priority, "admitted_at": e.admitted_at,
                        "attempts": e.attempts, "config": e.config, "meta": getattr(e, "meta", {}) or {}})
    return len(names), out


def rejections(layout: Layout, limit: int = LIST_LIMIT) -> tuple[int, list[dict[str, Any]]]:
    """(count, the newest `limit` rejections with their reasons). File names start with the UTC
    time, so a reverse listing is newest first."""
    try:
        names = sorted((n for n in os.listdir(layout.rejected) if n.endswith(".json")), reverse=True)
    except FileNotFoundError:
        return 0, []
    out = []
    for n in names[:limit]:
        rec = read_json_or_none(layout.rejected / n)
        if isinstance(rec, dict):
            rec["file"] = n
            out.append(rec)
    return len(names), out


class AgentView:
    """Agents: ledger totals (cached per ledger size and mtime), host state, budget, last error."""

    def __init__(self, layout: Layout, specs: list | None = None):
        self.layout = layout
        self.specs = {s.name: s for s in (specs or [])}
        self._cache: dict[str, tuple[tuple, dict[str, Any]]] = {}

    def _ledger(self, name: str) -> dict[str, Any]:
        from orze.agents.ledger import ledger_path, totals

        path = ledger_path(self.layout, name)
        try:
            st = path.stat()
            sig = (st.st_size, st.st_mtime_ns)
        except OSError:
            sig = None
        hit = self._cache.get(name)
        if hit is not None and hit[0] == sig:
            return hit[1]
        t = totals(self.layout, name).as_dict()
        last_error = None
        for rec in iter_jsonl(path):
            if rec.get("error") or rec.get("ok") is False or rec.get("status") == "error":
                last_error = {"t": rec.get("t"), "error": rec.get("error") or rec.get("detail") or rec.get("status")}
        t["last_error"] = last_error
        self._cache[name] = (sig, t)
        return t

    def all(self) -> list[dict[str, Any]]:
        from orze.agents.host import read_states

        states = read_states(self.layout)
        names = set(self.specs) | set(states)
        if self.layout.agents.is_dir():
            names |= {d.name for d in self.layout.agents.iterdir() if d.is_dir() and not d.name.startswith("_")}
        out = []
        for name in sorted(names):
            t = self._ledger(name)
            spec = self.specs.get(name)
            st = states.get(name) or {}
            out.append({**t, "agent": name, "state": st.get("status") or t.get("last_status") or "–",
                        "state_detail": st.get("detail"), "lease_node": st.get("lease_node"),
                        "policy": getattr(spec, "policy", None), "model": getattr(spec, "model", None),
                        "budget_usd": getattr(spec, "budget_usd", None),
                        "budget_tokens": getattr(spec, "budget_tokens", None)})
        return out


def run_files(layout: Layout, run_id: str) -> dict[str, Any]:
    """A run's own files: requested config, effective config, metrics (curves), the log's tail."""
    d = layout.run_dir(run_id)
    out: dict[str, Any] = {"dir": str(d), "exists": d.is_dir()}
    try:
        out["config_yaml"] = (d / RUN_CONFIG).read_text(encoding="utf-8")
    except OSError:
        out["config_yaml"] = None
    out["effective"] = read_json_or_none(d / RUN_EFFECTIVE)
    out["metrics"] = read_json_or_none(d / RUN_METRICS)
    out["log_tail"] = None
    for name in (RUN_LOG, RUN_OUTPUT):
        try:
            with open(d / name, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - LOG_TAIL_BYTES))
                data = f.read().decode("utf-8", "replace")
            if size > LOG_TAIL_BYTES:
                data = data.split("\n", 1)[-1]
            out["log_tail"], out["log_name"] = data, name
            break
        except OSError:
            continue
    return out
