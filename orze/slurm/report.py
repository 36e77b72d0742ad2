"""`orze slurm status`: the campaign's Slurm jobs next to its node heartbeats (pure).

A pilot is healthy when Slurm runs it and its daemon heartbeats. The two disagreeing is what a
human must see: a job RUNNING whose daemon writes no heartbeat (stuck in start-up, a wrong
interpreter, a full disk), or a daemon heartbeating for a job Slurm no longer runs (a job killed
without warning whose host lives on, or a clock problem).
"""

from __future__ import annotations

from typing import Any, Iterable

from orze.slurm.client import JobState
from orze.slurm.records import JobRecord

FRESH_S = 120.0     # a heartbeat older than this is not a live daemon (as `orze status` judges)
ACTIVE = {"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"}


def _alive(hb: dict[str, Any], now: float) -> bool:
    return (now - float(hb.get("updated_at", 0))) < FRESH_S and not hb.get("stopped")


def verdict(state: str | None, heartbeat: dict[str, Any] | None, now: float) -> str:
    alive = heartbeat is not None and _alive(heartbeat, now)
    running = state in ACTIVE
    if running and alive:
        return "ok"
    if running:
        return "job running, no daemon heartbeat"
    if alive:
        return "daemon heartbeating, job not running"
    if state == "PENDING":
        return "waiting for a node"
    return "ended"


def join(records: Iterable[JobRecord], states: Iterable[JobState], finals: dict[str, str],
         heartbeats: Iterable[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """One row per pilot (array task, or node of an srun job): Slurm's view and the daemon's."""
    by_key = {s.job: s for s in states}
    beats: dict[str, list[dict[str, Any]]] = {}
    for hb in heartbeats:
        sl = hb.get("slurm")
        if isinstance(sl, dict) and sl.get("job"):
            beats.setdefault(str(sl["job"]), []).append(hb)
    keys: list[tuple[str, str]] = []   # (submitted id, pilot key)
    for rec in records:
        keys += [(rec.job_id, k) for k in rec.task_keys]
        keys += [(rec.job_id, s.job) for s in states if s.job.split("_")[0] == rec.job_id
                 and (rec.job_id, s.job) not in keys and "[" not in s.job]
    known = {k for _, k in keys}
    keys += [(str(hbs[0]["slurm"].get("submitted_id") or k), k) for k, hbs in sorted(beats.items())
             if k not in known]
    rows = []
    for submitted, key in keys:
        st = by_key.get(key)
        state = st.state if st else (finals.get(key) or finals.get(st.job_id if st else key))
        hbs = sorted(beats.get(key, []), key=lambda h: h.get("updated_at", 0), reverse=True)
        # An srun job has one daemon per node, all with the job's key; an array task one at a time
        # (after a requeue onto another host the old node's heartbeat stays, stopped or stale).
        live = [h for h in hbs if _alive(h, now)]
        shown = live or hbs[:1] or [None]
        for hb in shown:
            running = sum(1 for s in (hb or {}).get("slots", []) if s.get("run"))
            rows.append({
                "submitted": submitted, "job": key, "state": state or "unknown (left Slurm's queue)",
                "slurm_node": st.nodes if st else "", "elapsed": st.elapsed if st else "",
                "time_left": st.time_left if st else "", "reason": st.reason if st else "",
                "orze_node": hb.get("node") if hb else None,
                "heartbeat_age_s": None if hb is None else round(now - float(hb.get("updated_at", 0)), 1),
                "daemon": None if hb is None else ("stopped" if hb.get("stopped") else
                                                   "stopping" if hb.get("stopping") else
                                                   "alive" if _alive(hb, now) else "silent"),
                "restarts": (hb or {}).get("slurm", {}).get("restart_count") if hb else None,
                "running": running if hb else None,
                "verdict": verdict(state, hb, now),
            })
    return rows
