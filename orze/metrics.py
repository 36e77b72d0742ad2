"""The metric registry: the one place that defines each metric Orze can rank by.

A metric has a name, a direction (max: higher is better; min: lower is better), a valid range, the
task types it applies to, and how it is computed with scikit-learn from (labels, probabilities).
Everything that reads a metric (the worker's early stopping, selection and metrics.json, the
verifier's MetricSpec, the leaderboard's ranking, `orze status`, the agents' prompt, the analysis)
reads it from here, through `resolve` and `Metric`.

Keys on disk (docs/tasks.md): the configured name `accuracy` is written as `val_accuracy` in each
history entry and as metrics.json's `metric_name`, `test_accuracy` for the test split. So `ap` is
`val_ap`, the key Orze has always written. `task.metric` accepts the bare name or the `val_` key;
`val_auc`, the old name of ROC AUC, is an alias of `roc_auc`.

Probabilities: a binary task's are P(class 1), shape (N,); a multi-class task's are the softmax
over K classes, shape (N, K). A metric undefined on a split (one class only) is NaN, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from orze.vocab import TaskType

if TYPE_CHECKING:
    import numpy as np

VAL_PREFIX = "val_"
TEST_PREFIX = "test_"
ALIASES = {"auc": "roc_auc"}   # val_auc (the old ROC AUC key) → roc_auc

Compute = Callable[["np.ndarray", "np.ndarray", int], float]


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str                    # "max" or "min"
    low: float
    high: float
    task_types: tuple[TaskType, ...]
    compute_fn: Compute
    description: str

    @property
    def history_key(self) -> str:
        """Its key in each history entry and metrics.json's `metric_name`."""
        return VAL_PREFIX + self.name

    @property
    def test_key(self) -> str:
        return TEST_PREFIX + self.name

    @property
    def sign(self) -> float:
        """+1 when higher is better, -1 when lower is: `sign · value` is always maximised."""
        return 1.0 if self.direction == "max" else -1.0

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b

    def worst(self) -> float:
        return -math.inf if self.direction == "max" else math.inf

    def compute(self, labels: "np.ndarray", probs: "np.ndarray", classes: int) -> float:
        """The metric of `probs` against integer `labels`; NaN where it is undefined (e.g. a split
        with one class)."""
        import numpy as np
        y = np.asarray(labels).astype(np.int64)
        if len(y) == 0:
            return float("nan")
        try:
            value = float(self.compute_fn(y, np.asarray(probs, dtype=np.float64), classes))
        except ValueError:   # sklearn: a class absent from the split, one class only
            return float("nan")
        return value

    def applies_to(self, task_type: TaskType) -> bool:
        return task_type in self.task_types


REGISTRY: dict[str, Metric] = {}

BOTH = (TaskType.BINARY, TaskType.MULTICLASS)


def register(name: str, direction: str, low: float, high: float, task_types=BOTH,
             description: str = "") -> Callable[[Compute], Compute]:
    """Add a metric to the registry (its name must be new)."""
    assert direction in ("max", "min"), direction

    def deco(fn: Compute) -> Compute:
        if name in REGISTRY:
            raise ValueError(f"metric '{name}' is registered twice")
        REGISTRY[name] = Metric(name, direction, low, high, tuple(task_types), fn,
                                description or (fn.__doc__ or "").strip())
        return fn
    return deco


def names(task_type: TaskType | None = None) -> list[str]:
    """Registered metric names (those applying to `task_type` when given), in registry order."""
    return [n for n, m in REGISTRY.items() if task_type is None or m.applies_to(task_type)]


def canonical(name: str) -> str:
    """`val_accuracy` → `accuracy`; `val_auc` → `roc_auc`; an unknown name is returned unchanged."""
    bare = name.removeprefix(VAL_PREFIX)
    return ALIASES.get(bare, bare)


def resolve(name: str, task_type: TaskType | None = None) -> Metric:
    """The registered metric `name` (bare, `val_` key or alias); ValueError naming the allowed
    names when it is unknown or does not apply to `task_type`."""
    m = REGISTRY.get(canonical(str(name)))
    if m is None:
        raise ValueError(f"'{name}' is not a registered metric; allowed: {', '.join(names(task_type))}")
    if task_type is not None and not m.applies_to(task_type):
        raise ValueError(f"metric '{m.name}' does not apply to a {task_type} task; allowed for "
                         f"{task_type}: {', '.join(names(task_type))}")
    return m


def lookup(name: object) -> Metric | None:
    """The metric a leaderboard row's `metric_name` names, or None (a custom worker's own name)."""
    return REGISTRY.get(canonical(name)) if isinstance(name, str) else None


def compute_all(labels: "np.ndarray", probs: "np.ndarray", task_type: TaskType, classes: int,
                prefix: str) -> dict[str, float]:
    """Every metric that applies to the task, keyed `prefix + name` (the history's keys)."""
    return {prefix + m.name: m.compute(labels, probs, classes)
            for m in REGISTRY.values() if m.applies_to(task_type)}


def _skm():
    """sklearn.metrics, imported on first use (numpy too, in the functions that compute):
    configs/orze.yaml is read by every CLI command and most never compute a metric (the import
    costs seconds of CPU on a loaded node)."""
    from sklearn import metrics
    return metrics


def _predicted(probs: "np.ndarray") -> "np.ndarray":
    import numpy as np
    return (probs >= 0.5).astype(np.int64) if probs.ndim == 1 else probs.argmax(axis=1)


def _matrix(probs: "np.ndarray") -> "np.ndarray":
    """(N, K) class probabilities (a binary task's (N,) P(1) becomes [1 − p, p])."""
    import numpy as np
    return np.stack([1 - probs, probs], axis=1) if probs.ndim == 1 else probs


@register("ap", "max", 0.0, 1.0, (TaskType.BINARY,))
def _ap(y, p, k):
    """Average precision of the positive class (area under precision-recall)."""
    import numpy as np

    if len(np.unique(y)) < 2:
        return float("nan")
    return _skm().average_precision_score(y, p)


@register("roc_auc", "max", 0.0, 1.0)
def _roc_auc(y, p, k):
    """Area under the ROC curve (multi-class: one-vs-rest, macro-averaged)."""
    import numpy as np

    if len(np.unique(y)) < 2:
        return float("nan")
    if p.ndim == 1:
        return _skm().roc_auc_score(y, p)
    return _skm().roc_auc_score(y, p, multi_class="ovr", average="macro", labels=list(range(k)))


@register("accuracy", "max", 0.0, 1.0)
def _accuracy(y, p, k):
    """Share of clips whose most probable class is their label (binary: P(1) ≥ 0.5)."""
    return _skm().accuracy_score(y, _predicted(p))


@register("balanced_accuracy", "max", 0.0, 1.0)
def _balanced_accuracy(y, p, k):
    """Mean per-class recall."""
    return _skm().balanced_accuracy_score(y, _predicted(p))


@register("macro_f1", "max", 0.0, 1.0)
def _macro_f1(y, p, k):
    """F1 per class, averaged with equal weight."""
    return _skm().f1_score(y, _predicted(p), average="macro", labels=list(range(k)), zero_division=0)


@register("macro_ap", "max", 0.0, 1.0)
def _macro_ap(y, p, k):
    """Average precision of each class against the rest, averaged over classes present."""
    import numpy as np

    m = _matrix(p)
    present = [c for c in range(k) if 0 < int((y == c).sum()) < len(y)]
    if not present:
        return float("nan")
    return float(np.mean([_skm().average_precision_score(y == c, m[:, c]) for c in present]))


@register("log_loss", "min", 0.0, math.inf)
def _log_loss(y, p, k):
    """Cross-entropy of the predicted class probabilities (lower is better)."""
    return _skm().log_loss(y, _matrix(p), labels=list(range(k)))


def registry_table() -> str:
    """The registry as a Markdown table (docs/tasks.md holds it; a test keeps the two equal)."""
    lines = ["| metric | direction | range | task types | what it is |", "|---|---|---|---|---|"]
    for m in REGISTRY.values():
        hi = "∞" if math.isinf(m.high) else f"{m.high:g}"
        lines.append(f"| `{m.name}` | {'higher' if m.direction == 'max' else 'lower'} is better | "
                     f"[{m.low:g}, {hi}] | {', '.join(t.value for t in m.task_types)} | {m.description} |")
    return "\n".join(lines)
