"""Metric integrity, for every worker (built-in or custom).

The metric is described by a `MetricSpec` (its name in metrics.json, its key in each history
entry, its valid range and direction); the daemon builds it from the registry (`MetricSpec.of`
an orze.metrics.Metric, through task.metric), so nothing here assumes validation AP. The checks,
over metrics.json as written:
- `metric_name`, when reported, names the ranked metric (a run on another metric is never ranked
  as if it were this one);
- `metric` is a finite number within [low, high];
- the history has the metric's key at every epoch (a missing key is a finding, never a skip);
- `selection.split` is the selection split, and `selection.best_epoch` is the history's optimum
  in the metric's direction (the first one on ties);
- `metric` equals the history's value at the selected epoch;
- `test_metric`, when reported, is finite and in range, and its provenance differs from the
  metric's: with `provenance` (the labels hash of the rows each was computed on, see
  docs/verification.md) they must name the selection and the test split's labels as the daemon
  computes them from features/clips.csv; without it, a `test_metric` equal to `metric` at a value
  strictly inside the range is taken for a copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from orze.metrics import Metric, canonical
from orze.verification.checks import Checks, number

# Equality of the final metric and the history's value at the selected epoch: the built-in worker
# re-evaluates the restored best weights, which is bit-identical on CPU; 1e-4 leaves room for a
# GPU kernel's non-determinism while still catching a metric taken from another epoch.
METRIC_TOLERANCE = 1e-4


@dataclass(frozen=True)
class MetricSpec:
    name: str = "val_ap"            # the metric's name (metrics.json's metric_name)
    history_key: str = "val_ap"     # its key in each history entry
    low: float = 0.0
    high: float = 1.0
    direction: str = "max"          # "max" or "min"
    selection_split: str = "val"
    test_split: str = "test"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b

    @classmethod
    def of(cls, metric: Metric) -> "MetricSpec":
        """The spec of a registered metric: every field from the registry's one definition."""
        return cls(name=metric.history_key, history_key=metric.history_key, low=metric.low,
                   high=metric.high, direction=metric.direction)


def _finite(v: Any) -> bool:
    return number(v) and math.isfinite(float(v))


def optimum_epoch(values: list[float], spec: MetricSpec) -> int | None:
    """1-based epoch of the first optimum among finite values, or None if there is none."""
    best, at = None, None
    for i, v in enumerate(values, 1):
        if _finite(v) and (best is None or spec.better(float(v), best)):
            best, at = float(v), i
    return at


def metric_checks(metrics: dict[str, Any], spec: MetricSpec,
                  expected_labels: dict[str, str] | None = None) -> Checks:
    c = Checks()
    m = metrics.get("metric")
    name = spec.name
    reported = metrics.get("metric_name")
    c.check("metric.name", reported is None or canonical(str(reported)) == canonical(name),
            f"metric: the worker reports metric_name {reported!r} but the ranked metric (task.metric) is "
            f"{name!r}; the run was selected and scored on another metric")
    in_range = _finite(m) and spec.low <= float(m) <= spec.high
    c.check("metric.finite_in_range", in_range,
            f"metric: {name} = {m!r} is not a finite number in [{spec.low:g}, {spec.high:g}]")
    history = metrics.get("history")
    if not isinstance(history, list) or not history:
        c.fail(f"metric: history is missing or empty; the {name} at the selected epoch cannot be checked")
        history = []
    values = [h.get(spec.history_key) if isinstance(h, dict) else None for h in history]
    missing = [i for i, v in enumerate(values, 1) if not number(v)]
    if history:
        c.check("metric.history_key", not missing,
                f"metric: history has no numeric '{spec.history_key}' at epoch(s) "
                f"{', '.join(map(str, missing[:5]))}; the selection cannot be checked")
    sel = metrics.get("selection") if isinstance(metrics.get("selection"), dict) else {}
    c.check("selection.split", sel.get("split") == spec.selection_split,
            f"selection: made on split {sel.get('split')!r}; only '{spec.selection_split}' may select")
    if history and not missing:
        best = optimum_epoch(values, spec)
        chosen = sel.get("best_epoch")
        c.check("selection.optimum", best is not None and chosen == best,
                f"selection: chose epoch {chosen} but the {spec.history_key} optimum of the history "
                f"is epoch {best}")
        if isinstance(chosen, int) and 1 <= chosen <= len(values) and in_range:
            at = values[chosen - 1]
            c.check("metric.equals_history",
                    _finite(at) and abs(float(at) - float(m)) <= METRIC_TOLERANCE,
                    f"metric: {name} = {float(m):.6g} but the history's {spec.history_key} at the "
                    f"selected epoch {chosen} is {at!r}")
        elif in_range:
            c.fail(f"selection: best_epoch {chosen!r} is not an epoch of the history (1..{len(values)})")
    tm = metrics.get("test_metric")
    if tm is not None:
        c.check("test_metric.finite_in_range", _finite(tm) and spec.low <= float(tm) <= spec.high,
                f"test_metric: {tm!r} is not a finite number in [{spec.low:g}, {spec.high:g}]")
    prov = metrics.get("provenance") if isinstance(metrics.get("provenance"), dict) else None
    if prov is not None:
        got = {k: (prov.get(k) or {}).get("labels_sha") if isinstance(prov.get(k), dict) else None
               for k in ("metric", "test_metric")}
        c.check("provenance.distinct", got["metric"] is not None and got["metric"] != got["test_metric"],
                f"provenance: metric and test_metric were computed on the same rows "
                f"(labels hash {got['metric']})")
        if expected_labels is not None:
            want = expected_labels.get(spec.selection_split)
            c.check("provenance.metric_split", got["metric"] == want,
                    f"provenance: {name} was computed on rows with labels hash {got['metric']}, but the "
                    f"'{spec.selection_split}' split of features/clips.csv hashes to {want}")
            if tm is not None:
                want_t = expected_labels.get(spec.test_split)
                c.check("provenance.test_split", got["test_metric"] == want_t,
                        f"provenance: test_metric was computed on rows with labels hash "
                        f"{got['test_metric']}, but the '{spec.test_split}' split hashes to {want_t}")
    elif tm is not None and _finite(m) and _finite(tm):
        inside = spec.low < float(m) < spec.high
        c.check("provenance.distinct", not (inside and float(tm) == float(m)),
                f"test_metric: equals {name} exactly ({float(m)!r}); the metric must come from the "
                f"'{spec.selection_split}' split, not be a copy of the test metric")
    return c
