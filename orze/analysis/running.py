"""The campaign's headline numbers folded one leaderboard row at a time, for long-running readers
(the dashboard, the notifier) that see rows as they are appended and must not re-read 100,000 rows
to learn what one new row changed.

`RunningBest` tracks the best finished run (the ranking's criterion: status "done", finite numeric
metric, better in the metric's direction from orze.metrics — log_loss is minimised — ties to the
smaller id as in orze.store.leaderboard.ranked; a row on another metric than the best's, after
task.metric changed, starts the fold again on the new metric), when it was
set, runs since then, and the noise floor exactly as orze.analysis.noise computes it: replicates
are runs whose configurations agree on everything but `seed`; sigma is the pooled within-
configuration standard deviation sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over configurations
run at least twice (kept here with Welford's update, so the fold is exact, not an approximation);
a gain is within noise when it is below z * sqrt(2) * sigma.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from orze.analysis.noise import SEED, Z_95
from orze.store.leaderboard import RANKED_STATUS, metric_sign, same_metric


def finite_metric(row: dict[str, Any]) -> float | None:
    m = row.get("metric")
    if isinstance(m, bool) or not isinstance(m, (int, float)) or not math.isfinite(m):
        return None
    return float(m)


def replicate_key(config: dict[str, Any] | None) -> bytes:
    """Equal for two configurations that differ at most in their seed: a 16-byte digest of the
    canonical JSON (a long-running daemon holds one per distinct configuration)."""
    cfg = {k: v for k, v in (config or {}).items() if k != SEED and v is not None}
    try:
        data = orjson.dumps(cfg, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:   # a value orjson cannot encode: the slower, forgiving encoder
        data = json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass
class _Group:
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0   # sum of squared deviations from the mean (Welford)


@dataclass
class NewBest:
    """A row that set a new best, against the best before it."""
    row: dict[str, Any]
    previous: dict[str, Any] | None
    gain: float | None
    threshold: float | None   # z * sqrt(2) * sigma at that moment (None: no replicates yet)

    @property
    def beyond_noise(self) -> bool | None:
        if self.gain is None or self.threshold is None:
            return None
        return self.gain >= self.threshold


@dataclass
class RunningBest:
    z: float = Z_95
    best: dict[str, Any] | None = None
    best_metric: float = -math.inf
    finished: int = 0                 # ranked (done, finite metric) runs seen
    since_best: int = 0               # ranked runs after the current best
    _groups: dict[bytes, _Group] = field(default_factory=dict)
    _dof: int = 0
    _m2: float = 0.0

    @property
    def sigma(self) -> float | None:
        return math.sqrt(self._m2 / self._dof) if self._dof > 0 else None

    @property
    def threshold(self) -> float | None:
        s = self.sigma
        return None if s is None else self.z * math.sqrt(2) * s

    @property
    def replicated_configs(self) -> int:
        return sum(1 for g in self._groups.values() if g.n >= 2)

    def add(self, row: dict[str, Any]) -> NewBest | None:
        """Fold one row in; returns the new-best record when this row set one."""
        if row.get("status") != RANKED_STATUS:
            return None
        m = finite_metric(row)
        if m is None:
            return None
        if self.best is not None and not same_metric(row, self.best.get("metric_name")):
            self.__init__(z=self.z)   # task.metric changed: the old metric's best is not comparable
        sign = metric_sign(row.get("metric_name"))
        self.finished += 1
        threshold_before = self.threshold
        g = self._groups.setdefault(replicate_key(row.get("config")), _Group())
        old_m2 = g.m2
        g.n += 1
        delta = m - g.mean
        g.mean += delta / g.n
        g.m2 += delta * (m - g.mean)
        self._m2 += g.m2 - old_m2
        if g.n >= 2:
            self._dof += 1
        best_o = sign * self.best_metric if self.best is not None else -math.inf
        better = sign * m > best_o or (sign * m == best_o and self.best is not None
                                       and str(row.get("id")) < str(self.best.get("id")))
        if not better:
            self.since_best += 1
            return None
        previous, prev_metric = self.best, self.best_metric
        self.best, self.best_metric, self.since_best = row, m, 0
        gain = None if previous is None else sign * (m - prev_metric)   # the improvement, > 0
        return NewBest(row, previous, gain, threshold_before)
