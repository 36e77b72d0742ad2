"""A run's kept predictions (runs/exp/<id>/predictions.npz, written by the built-in worker).

Per split (val, test): `<split>_ids` (clip ids), `<split>_labels` (integer classes) and
`<split>_probs` (float32 probabilities: (N,) P(1) for a binary task, (N, K) for a multi-class
one), computed with the selected epoch's weights. Any registered metric (orze.metrics) can be
computed from them later without retraining: `orze leaderboard --metric NAME` does.
"""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path

import numpy as np

from orze.layout import RUN_PREDICTIONS
from orze.metrics import Metric
from orze.store.atomic import atomic_write_bytes
from orze.vocab import TaskType

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray, np.ndarray]   # ids, labels, probs


def save_predictions(path: Path, splits: dict[str, Split]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for split, (ids, labels, probs) in splits.items():
        arrays[f"{split}_ids"] = np.asarray(ids, dtype=str)
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.int64)
        arrays[f"{split}_probs"] = np.asarray(probs, dtype=np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_predictions(path: Path) -> dict[str, Split]:
    """{split: (ids, labels, probs)}; OSError/ValueError for a missing or damaged file."""
    with np.load(path, allow_pickle=False) as z:
        splits = sorted({k.rsplit("_", 1)[0] for k in z.files})
        return {s: (z[f"{s}_ids"], z[f"{s}_labels"], z[f"{s}_probs"]) for s in splits}


def task_of(probs: np.ndarray) -> tuple[TaskType, int]:
    """(task type, classes) of kept probabilities: (N,) is binary, (N, K) multi-class."""
    return (TaskType.BINARY, 2) if probs.ndim == 1 else (TaskType.MULTICLASS, int(probs.shape[1]))


def run_metric(run_dir: Path, metric: Metric) -> dict[str, float] | None:
    """`metric` on each kept split of one run ({split: value}); None when the run kept no
    predictions (recorded before they were kept, or a custom worker) or the file is unreadable,
    and ValueError when the metric does not apply to the run's task."""
    path = Path(run_dir) / RUN_PREDICTIONS
    if not path.exists():
        return None
    try:
        splits = load_predictions(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        log.warning("%s: unreadable predictions (%s); the run is left out", path, e)
        return None
    out = {}
    for split, (_, labels, probs) in splits.items():
        task_type, classes = task_of(probs)
        if not metric.applies_to(task_type):
            raise ValueError(f"metric '{metric.name}' does not apply to a {task_type} task ({path})")
        out[split] = metric.compute(labels, probs, classes)
    return out
