"""The task's classes, read from the labels of features/clips.csv and checked against task.type.

Pure functions over plain data (label lists per split), shared by the worker (which builds a head
with one logit per class) and the daemon (which computes what it expects of a run independently
of the worker). Rules (docs/tasks.md):
- labels are class indices 0..K-1 with every index in between present somewhere (a gap means the
  labels are not 0..K-1: the error names the missing indices and the file);
- binary: K ≤ 2 (labels 0/1); a label above 1 is refused, naming it and pointing at multiclass;
- multiclass: K ≥ 2 classes present in the training split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from orze.vocab import TaskType


class TaskError(ValueError):
    """The labels do not fit the task; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Classes:
    task_type: TaskType
    count: int                                 # K: 2 for binary, the number of classes otherwise
    per_split: dict[str, list[int]]            # clips per class index, per split

    @property
    def outputs(self) -> int:
        """Logits the head produces: one for binary (P(1) by a sigmoid), K for multiclass."""
        return 1 if self.task_type == TaskType.BINARY else self.count

    def priors(self, split: str = "train") -> list[float]:
        counts = self.per_split[split]
        n = max(sum(counts), 1)
        return [c / n for c in counts]


def classes_from_labels(labels: dict[str, list[int]], task_type: TaskType, source: Path | str) -> Classes:
    """The classes of the labels per split (`source` names the file in errors)."""
    task_type = TaskType(task_type)
    everything = Counter(int(y) for ys in labels.values() for y in ys)
    if not everything:
        raise TaskError(f"{source}: no labels")
    negative = sorted(y for y in everything if y < 0)
    if negative:
        raise TaskError(f"{source}: labels must be class indices 0..K-1; found {negative[:5]}")
    top = max(everything)
    if task_type == TaskType.BINARY and top > 1:
        above = sorted(y for y in everything if y > 1)
        raise TaskError(f"{source}: task.type is binary but labels include {above[:5]} (a binary task's "
                        f"labels are 0 or 1); set task.type: multiclass in configs/orze.yaml for "
                        f"{top + 1} classes")
    k = max(top + 1, 2)
    gaps = [c for c in range(k) if c not in everything]
    if task_type == TaskType.MULTICLASS and gaps:
        raise TaskError(f"{source}: labels must be 0..K-1 with every class present; class(es) "
                        f"{gaps[:10]} of 0..{k - 1} have no clip")
    per_split = {s: [sum(1 for y in ys if int(y) == c) for c in range(k)] for s, ys in labels.items()}
    if task_type == TaskType.MULTICLASS:
        present = sum(1 for n in per_split.get("train", []) if n > 0)
        if present < 2:
            raise TaskError(f"{source}: a multiclass task needs at least 2 classes in the train split; "
                            f"it has {present}")
    return Classes(task_type, k, per_split)
