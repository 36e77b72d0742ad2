"""An agent's health: consecutive failing cycles, backoff and the circuit breaker.

A proposing cycle *fails* when it errs (provider, prompt or rules error) or submits nothing. After
the k-th consecutive failure the agent is `backing off` for min(failure_backoff_max_s,
failure_backoff_s · 2^(k-1)) seconds (at least a provider's retry-after); after
`pause_after_failures` of them, or at once on a permanent error (a rejected key, an unknown model:
HTTP 401/403/404), the circuit opens: the agent is `paused` for `pause_s`. One good cycle closes it.
When a pause ends, the next cycle is a trial: failing again re-opens the circuit at once.

The state lives in runs/agents/<name>/health.json, written by the agent (one writer) and read by
`orze status`; it survives restarts, so a restarted agent does not start spending again at full
rate. `orze agent NAME --resume` writes a fresh `ok` state, which a waiting agent notices within a
second. `next_state` is pure; `load` / `save` / `resume` are the file edges.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orze.layout import Layout
from orze.store.atomic import atomic_write_json, read_json_or_none

HEALTH = "health.json"
OK, BACKING_OFF, PAUSED = "ok", "backing off", "paused"


@dataclass
class Health:
    state: str = OK
    failures: int = 0                  # consecutive failing cycles
    until: float | None = None         # wall-clock end of the wait (backing off / paused)
    reason: str = ""
    t: float = 0.0                     # when written
    resumed: bool = False              # written by --resume
    notices: list[str] = field(default_factory=list)   # rules waived, with why

    def waiting(self, now: float) -> bool:
        return self.state in (BACKING_OFF, PAUSED) and self.until is not None and now < self.until


def next_state(h: Health, failed: bool, reason: str, spec: Any, now: float, permanent: bool = False,
               retry_after: float | None = None) -> Health:
    """The state after a cycle (pure). `spec` is the AgentSpec (its failure_* and pause_* fields)."""
    if not failed:
        return Health(OK, 0, None, "", now, notices=list(h.notices))
    k = h.failures + 1
    if permanent or k >= spec.pause_after_failures:
        why = ("permanent error" if permanent else f"{k} failing cycles in a row") + f": {reason}"
        return Health(PAUSED, k, now + spec.pause_s, why[:500], now, notices=list(h.notices))
    wait = min(spec.failure_backoff_max_s, spec.failure_backoff_s * (2 ** (k - 1)))
    wait = max(wait, retry_after or 0.0)
    return Health(BACKING_OFF, k, now + wait, f"{k} failing cycle(s): {reason}"[:500], now,
                  notices=list(h.notices))


def path(layout: Layout, agent: str) -> Path:
    return layout.agent_dir(agent) / HEALTH


def load(layout: Layout, agent: str) -> Health:
    obj = read_json_or_none(path(layout, agent))
    if obj is None:
        return Health()
    known = {k: obj[k] for k in Health.__dataclass_fields__ if k in obj}
    try:
        return Health(**known)
    except TypeError:
        return Health()


def save(layout: Layout, agent: str, h: Health) -> None:
    atomic_write_json(path(layout, agent), asdict(h))


def resume(layout: Layout, agent: str, now: float | None = None) -> Health:
    """Close the circuit by hand (`orze agent NAME --resume`)."""
    old = load(layout, agent)
    h = Health(OK, 0, None, "resumed by hand", time.time() if now is None else now, resumed=True,
               notices=old.notices)
    save(layout, agent, h)
    return h
