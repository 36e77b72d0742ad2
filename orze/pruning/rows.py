"""What a leaderboard row carries for pruning (pure): the run's curve, and for a pruned run where
it was judged and stopped and the training time the stop saved.

`curve` is the ranked metric's value at each epoch of metrics.json's history (null where an
epoch lacks it), so later runs are judged against this one from its row alone. `pruned` is null
for a run that ran its course; for a pruned run: the epoch the pruner judged (`epoch`), the
epoch after which the worker stopped (`stopped_after_epoch`, at or after the judged one: the
worker stops at the first boundary after the request), the rule and its reason, and `saved_s`,
estimated as (configured epochs − epochs completed) × the run's mean seconds per epoch.
"""

from __future__ import annotations

from typing import Any

from orze.vocab import RunStatus


def curve(metrics: dict[str, Any] | None, history_key: str) -> list[Any] | None:
    history = (metrics or {}).get("history")
    if not isinstance(history, list):
        return None
    return [h.get(history_key) if isinstance(h, dict) else None for h in history]


def pruned_fields(status: RunStatus, metrics: dict[str, Any] | None, request: dict[str, Any] | None,
                  config: dict[str, Any]) -> dict[str, Any] | None:
    if status != RunStatus.PRUNED:
        return None
    m = metrics or {}
    req = request or {}
    stopped = (m.get("pruned") or {}).get("stopped_after_epoch") if isinstance(m.get("pruned"), dict) else None
    done = stopped if isinstance(stopped, int) else m.get("epochs_run")
    epochs, per_epoch = config.get("epochs"), m.get("seconds_per_epoch")
    saved = None
    if isinstance(epochs, int) and isinstance(done, int) and isinstance(per_epoch, (int, float)):
        saved = round(max(0, epochs - done) * float(per_epoch), 3)
    return {"epoch": req.get("epoch"), "stopped_after_epoch": done, "epochs_configured": epochs,
            "rule": req.get("rule"), "reason": req.get("reason"), "saved_s": saved}


def saved_seconds(rows: list[dict[str, Any]]) -> float:
    """Training seconds the pruner saved over these rows (the sum of their estimates)."""
    return float(sum(r["pruned"]["saved_s"] for r in rows
                     if r.get("status") == RunStatus.PRUNED and isinstance(r.get("pruned"), dict)
                     and isinstance(r["pruned"].get("saved_s"), (int, float))))


def pruned_summary(row: dict[str, Any]) -> str:
    """'pruned after epoch 3 of 10 (judged at 2: …; ~41s saved)' for a pruned row, else ''."""
    p = row.get("pruned")
    if row.get("status") != RunStatus.PRUNED or not isinstance(p, dict):
        return ""
    saved = f"; ~{p['saved_s']:.0f}s saved" if isinstance(p.get("saved_s"), (int, float)) else ""
    return (f"pruned after epoch {p.get('stopped_after_epoch')} of {p.get('epochs_configured')} "
            f"(judged at epoch {p.get('epoch')}: {p.get('reason')}{saved})")


def pruning_status(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What `orze status` shows: runs pruned, the training seconds saved, the latest pruned."""
    pruned = [r for r in rows if r.get("status") == RunStatus.PRUNED]
    return {"runs": len(pruned), "saved_s": saved_seconds(pruned),
            "recent": [{"id": r.get("id"), "epoch": (r.get("pruned") or {}).get("stopped_after_epoch"),
                        "epochs": (r.get("config") or {}).get("epochs")} for r in pruned[-5:]]}
