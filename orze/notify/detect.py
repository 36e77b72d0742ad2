"""Events worth telling a human about, derived from the research directory's plain data.

Everything here is pure: functions and small folds over rows, heartbeats and agent states, with the
current time passed in. Each event carries a `key` computed only from the shared files' contents
(run ids, node start times, agent restart counts, the date), so every node that derives the same
event derives the same key: the notifier sends an event only if it is the one to create the key's
marker file, which makes each event go out once for the whole cluster.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from orze.analysis.running import RunningBest, finite_metric

SEVERITIES = ("info", "warning", "critical")


@dataclass
class Event:
    kind: str
    key: str
    title: str
    text: str
    severity: str = "info"
    fields: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "title": self.title, "text": self.text,
                "severity": self.severity, "fields": self.fields}


def _fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _short_config(cfg: dict[str, Any] | None) -> str:
    cfg = cfg or {}
    b = cfg.get("backbone")
    b = "+".join(map(str, b)) if isinstance(b, list) else b
    return "/".join(str(x) for x in (b, cfg.get("temporal_encoder"), cfg.get("pooling"), cfg.get("loss"))
                    if x is not None)


class RowEvents:
    """Folds leaderboard rows, in file order, into new-best, failure/misconfiguration spike and
    plateau events. Every node folds the same rows in the same order, so every node derives the
    same events with the same keys."""

    def __init__(self, *, spike_count: int, spike_window_s: float, plateau_runs: int):
        self.best = RunningBest()
        self.spike_count, self.spike_window_s, self.plateau_runs = spike_count, spike_window_s, plateau_runs
        self._bad: dict[str, deque[float]] = {"failed": deque(), "misconfigured": deque()}
        self._armed = {"failed": True, "misconfigured": True}

    def add(self, row: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        status = row.get("status")
        nb = self.best.add(row)
        if nb is not None and nb.previous is not None:
            out.append(self._new_best(nb))
        if nb is None and status == "done" and finite_metric(row) is not None \
                and self.best.since_best == self.plateau_runs and self.best.best is not None:
            b = self.best.best
            out.append(Event(
                "plateau", f"plateau-{b.get('id')}",
                f"Plateau: {self.plateau_runs} runs without a new best",
                f"The best is still {b.get('id')} ({b.get('metric_name') or 'metric'} "
                f"{_fmt(self.best.best_metric)}, {_short_config(b.get('config'))}) after "
                f"{self.plateau_runs} finished runs.", "warning",
                {"best_id": b.get("id"), "best_metric": self.best.best_metric, "runs": self.plateau_runs}))
        if status in self._bad:
            out.extend(self._spike(status, row))
        return out

    def _new_best(self, nb) -> Event:
        r, p = nb.row, nb.previous
        within = nb.beyond_noise is False
        if nb.threshold is None:
            noise = "noise floor unknown (no replicated configurations yet; `orze replicate` measures it)"
        else:
            noise = (f"{'within' if within else 'beyond'} the noise floor ({_fmt(nb.threshold)}, "
                     f"σ={_fmt(self.best.sigma)})")
        return Event(
            "new_best", f"new_best-{r.get('id')}",
            f"New best {r.get('metric_name') or 'metric'} {_fmt(finite_metric(r))}",
            f"{r.get('id')} ({_short_config(r.get('config'))}, agent {r.get('agent') or '–'}) beats "
            f"{p.get('id')} ({_fmt(finite_metric(p))}) by {_fmt(nb.gain)}: {noise}.",
            "info", {"id": r.get("id"), "metric": finite_metric(r), "previous_id": p.get("id"),
                     "gain": nb.gain, "threshold": nb.threshold, "beyond_noise": nb.beyond_noise})

    def _spike(self, status: str, row: dict[str, Any]) -> list[Event]:
        t = row.get("finished_at")
        if not isinstance(t, (int, float)):
            return []
        times = self._bad[status]
        times.append(float(t))
        while times and times[0] < t - self.spike_window_s:
            times.popleft()
        if len(times) < self.spike_count:
            self._armed[status] = True   # the spike is over: the next one is news again
            return []
        if not self._armed[status]:
            return []
        self._armed[status] = False
        kind = "failure_spike" if status == "failed" else "misconfigured_spike"
        minutes = self.spike_window_s / 60
        err = row.get("error") if isinstance(row.get("error"), dict) else {}
        detail = err.get("class") or "; ".join((err.get("findings") or [])[:2]) or "see `orze status`"
        return [Event(kind, f"{kind}-{row.get('id')}",
                      f"{len(times)} {status} runs in {minutes:g} min",
                      f"{len(times)} runs {status} within {minutes:g} minutes (threshold "
                      f"{self.spike_count}); the latest: {row.get('id')} ({detail}).", "critical",
                      {"count": len(times), "window_min": minutes, "latest_id": row.get("id")})]


def node_lost(heartbeats: Iterable[tuple[dict[str, Any], float]], after_s: float) -> list[Event]:
    """Nodes whose heartbeat is older than `after_s` (age by the filesystem's clock) and that did
    not stop cleanly. One event per daemon incarnation (node name and its start time)."""
    out = []
    for hb, age in heartbeats:
        if hb.get("stopped") or age <= after_s:
            continue
        node = str(hb.get("node"))
        running = [s.get("run") for s in hb.get("slots") or [] if s.get("run")]
        out.append(Event(
            "node_lost", f"node_lost-{node}-{int(hb.get('started_at') or 0)}",
            f"Node {node} lost", f"No heartbeat from node {node} (host {hb.get('host')}) for "
            f"{age / 60:.0f} min; {len(running)} run(s) it held will be re-queued when their leases expire"
            + (f": {', '.join(running[:5])}" if running else "") + ".", "critical",
            {"node": node, "age_s": round(age, 1), "runs": running}))
    return out


BACKOFF_STATES = ("waiting", "failed")


def agent_events(states: dict[str, dict[str, Any]], totals: dict[str, dict[str, Any]],
                 budgets: dict[str, dict[str, Any]]) -> list[Event]:
    """An agent backing off (its process died and a restart is pending) or given up, and an agent
    out of budget (its ledger's last cycle said so, or its spend reached the configured budget).

    states: runs/agents/<name>/state.json contents; totals: the ledger's AgentTotals.as_dict() per
    agent; budgets: {name: {"budget_usd", "budget_tokens"}} from the agent specs."""
    out = []
    for name, st in sorted(states.items()):
        status = st.get("status")
        if status in BACKOFF_STATES:
            out.append(Event(
                "agent_backoff", f"agent_backoff-{name}-{st.get('node')}-{status}-{st.get('restarts', 0)}",
                f"Agent {name} {'backing off' if status == 'waiting' else 'stopped'}",
                f"Agent {name} on {st.get('node')}: {status} after {st.get('restarts', 0)} restart(s). "
                f"{str(st.get('detail') or '')[:400]}", "warning" if status == "waiting" else "critical",
                {"agent": name, "status": status, "restarts": st.get("restarts", 0)}))
    for name, t in sorted(totals.items()):
        b = budgets.get(name) or {}
        reasons = []
        if b.get("budget_usd") is not None and t.get("cost_usd", 0.0) >= b["budget_usd"]:
            reasons.append(f"${t.get('cost_usd', 0.0):.2f} of ${b['budget_usd']:.2f}")
        if b.get("budget_tokens") is not None and t.get("tokens", 0) >= b["budget_tokens"]:
            reasons.append(f"{t.get('tokens', 0)} of {b['budget_tokens']} tokens")
        if t.get("last_status") == "budget" and not reasons:
            reasons.append("its budget or idea limit")
        if reasons:
            out.append(Event(
                "agent_budget", f"agent_budget-{name}-{b.get('budget_usd')}-{b.get('budget_tokens')}",
                f"Agent {name} out of budget", f"Agent {name} has spent {'; '.join(reasons)} and "
                f"stopped proposing ({t.get('calls', 0)} calls, {t.get('cycles', 0)} cycles).", "warning",
                {"agent": name, "cost_usd": t.get("cost_usd"), "tokens": t.get("tokens")}))
    return out


def cluster_idle(heartbeats: Iterable[tuple[dict[str, Any], float]], fresh_s: float, queue_depth: int,
                 inbox: int) -> bool:
    """The queue and inbox are empty and every slot of every live node is idle (and there is one)."""
    live = [hb for hb, age in heartbeats if not hb.get("stopped") and age <= fresh_s]
    if not live or queue_depth > 0 or inbox > 0:
        return False
    return all(not s.get("run") for hb in live for s in hb.get("slots") or [])


def queue_idle_event(last_row_id: str | None, idle_s: float, slots: int) -> Event:
    return Event("queue_idle", f"queue_idle-{last_row_id or 'none'}",
                 "Queue empty, slots idle",
                 f"The queue and inbox are empty and all {slots} slot(s) have been idle for "
                 f"{idle_s / 60:.0f} min (last result {last_row_id or 'none'}): no agent is proposing.",
                 "warning", {"idle_s": round(idle_s, 1), "slots": slots, "last_row_id": last_row_id})


def disk_low(free_bytes: int, total_bytes: int, min_free_gb: float, path: str,
             now: float | None = None) -> list[Event]:
    """Free space below the bound: at most one event per UTC day for the campaign."""
    free_gb = free_bytes / 1e9
    if free_gb >= min_free_gb:
        return []
    day = time.strftime("%Y-%m-%d", time.gmtime(now if now is not None else time.time()))
    pct = 100.0 * free_bytes / total_bytes if total_bytes else math.nan
    return [Event("disk_low", f"disk_low-{day}", f"Disk space low: {free_gb:.1f} GB free",
                  f"{path} has {free_gb:.1f} GB free ({pct:.1f}%), below {min_free_gb:g} GB: runs "
                  f"and the leaderboard may fail to be written.", "critical",
                  {"free_gb": round(free_gb, 2), "path": path})]
