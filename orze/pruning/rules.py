"""The pruning decision: pure functions over plain data, tested without processes.

A run's curve is its ranked metric at epochs 1, 2, … (the metric's `history_key` from each
history entry); a comparable run's curve comes with whether it completed (`done`) or was itself
pruned. `decide(curve, comparable, settings, direction)` judges the run at its last epoch:

- median (Optuna's `PercentilePruner`; `MedianPruner` is percentile 50): prune when the run's
  best value so far is worse than the `percentile`-th best of the completed comparable runs'
  values at this epoch. Completed only: Optuna ignores pruned trials here.
- successive_halving (Optuna's asynchronous `SuccessiveHalvingPruner`, min_early_stopping_rate
  0): rungs at epochs min_resource·η^k; at a rung epoch the run survives only if its value is in
  the top ⌊n/η⌋ (at least 1) of the n values that every comparable run (completed or pruned)
  and this one had at that epoch.

Both then gate as the settings say: no judgement during the first `warmup_epochs` epochs, nor
with fewer than `min_comparable` comparable values at the epoch. A NaN value is pruned, as
Optuna prunes it. Why not call Optuna itself: its successive halving keeps the rung values in
the study's storage as trials report, so its answer depends on the order of past calls rather
than on the histories; tests/pruning check that these functions give Optuna's decisions on the
same histories (both rules, both directions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from orze.pruning.settings import PruningConfig
from orze.space.validate import PRUNE_CHOICES

NEVER = PRUNE_CHOICES[1]        # an idea's `prune: never` (a meta key: not in the fingerprint)


@dataclass(frozen=True)
class Curve:
    values: tuple[float, ...]     # the metric at epochs 1..len
    completed: bool = True        # False: the run was itself pruned (its curve ends where it was)


@dataclass(frozen=True)
class Verdict:
    prune: bool
    epoch: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "reason": self.reason}


def _f(v: Any) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _at(curves: Sequence[Curve], epoch: int) -> list[float]:
    return [_f(c.values[epoch - 1]) for c in curves if len(c.values) >= epoch]


def median_rule(curve: Sequence[float], comparable: Sequence[Curve], s: PruningConfig,
                direction: str) -> Verdict:
    epoch = len(curve)
    completed = [c for c in comparable if c.completed]
    if len(completed) < s.min_comparable:
        return Verdict(False, epoch, f"{len(completed)} completed comparable runs (< {s.min_comparable})")
    own = np.asarray([_f(v) for v in curve], dtype=float)
    if np.all(np.isnan(own)):
        return Verdict(True, epoch, f"no finite metric by epoch {epoch}")
    values = _at(completed, epoch)
    if len(values) < s.min_comparable:
        return Verdict(False, epoch, f"{len(values)} comparable runs at epoch {epoch} (< {s.min_comparable})")
    best = float(np.nanmax(own) if direction == "max" else np.nanmin(own))
    q = 100.0 - s.percentile if direction == "max" else s.percentile
    bar = float(np.nanpercentile(np.asarray(values, dtype=float), q))
    if math.isnan(bar):
        return Verdict(False, epoch, f"no finite comparable value at epoch {epoch}")
    worse = best < bar if direction == "max" else best > bar
    what = "median" if s.percentile == 50 else f"top-{s.percentile:g}% bar"
    return Verdict(worse, epoch, f"best {best:.4f} by epoch {epoch} {'below' if worse else 'reaches'} "
                                 f"the {what} {bar:.4f} of {len(values)} comparable runs")


def rung_epochs(s: PruningConfig, up_to: int) -> list[int]:
    out, k = [], 0
    while (e := s.min_resource * s.reduction_factor ** k) <= up_to:
        out.append(e)
        k += 1
    return out


def halving_rule(curve: Sequence[float], comparable: Sequence[Curve], s: PruningConfig,
                 direction: str) -> Verdict:
    epoch = len(curve)
    if epoch not in rung_epochs(s, epoch):
        return Verdict(False, epoch, f"epoch {epoch} is not a rung")
    value = _f(curve[-1])
    if math.isnan(value):
        return Verdict(True, epoch, f"no finite metric at rung epoch {epoch}")
    others = _at(comparable, epoch)
    if len(others) < s.min_comparable:
        return Verdict(False, epoch, f"{len(others)} comparable runs at rung epoch {epoch} (< {s.min_comparable})")
    competing = sorted(others + [value])
    keep = max(len(competing) // s.reduction_factor, 1)
    bar = competing[-keep] if direction == "max" else competing[keep - 1]
    survives = value >= bar if direction == "max" else value <= bar
    return Verdict(not survives, epoch, f"{value:.4f} at rung epoch {epoch} {'in' if survives else 'outside'} "
                                        f"the top {keep} of {len(competing)} (cut {bar:.4f})")


RULES = {"median": median_rule, "successive_halving": halving_rule}


def decide(curve: Sequence[float], comparable: Sequence[Curve], settings: PruningConfig,
           direction: str = "max") -> Verdict:
    """Whether to stop a run whose metric so far is `curve`, judged at its last epoch."""
    epoch = len(curve)
    if epoch == 0:
        return Verdict(False, 0, "no epoch yet")
    if epoch <= settings.warmup_epochs:
        return Verdict(False, epoch, f"warm-up (epoch {epoch} of {settings.warmup_epochs})")
    return RULES[settings.rule](curve, comparable, settings, direction)


def next_judgeable(settings: PruningConfig, after: int) -> int:
    """The first epoch after `after` at which `decide` could prune at all (past the warm-up; for
    successive halving, a rung), whatever the comparable runs: a worker need not await a verdict
    on any epoch before it."""
    first = max(after, settings.warmup_epochs) + 1
    if settings.rule == "successive_halving":
        return next(e for e in rung_epochs(settings, first * settings.reduction_factor + settings.min_resource)
                    if e >= first)
    return first


def protected(meta: dict[str, Any]) -> str | None:
    """Why an idea is never pruned, or None: the user's `prune: never`, or a replicate (`orze
    replicate` measures the noise floor: every seed must run its full schedule)."""
    if meta.get("prune") == NEVER:
        return "prune: never"
    if meta.get("source") == "replicate":
        return "a replicate"
    return None
