"""Evaluation: the model's logits on a split, class probabilities, every metric of the task
(from orze.metrics' registry), the determinism probe, and the run's kept predictions
(predictions.npz: ids, labels and probabilities per split, for `orze leaderboard --metric` and
for anyone who wants the winner's scores without retraining).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orze.config import TaskConfig
from orze.metrics import compute_all
from orze.predictions import save_predictions
from orze.worker.data import SplitData
from orze.worker.evidence import Recorder
from orze.worker.model import ClipClassifier

EVAL_BATCH = 512


@torch.no_grad()
def predict(model: ClipClassifier, split: SplitData, autocast, rec: Recorder | None = None,
            name: str = "") -> np.ndarray:
    model.eval()
    out = []
    phase = rec.in_phase("eval") if rec is not None else contextlib.nullcontext()
    with phase:
        for start in range(0, split.y.shape[0], EVAL_BATCH):
            sl = slice(start, start + EVAL_BATCH)
            if rec is not None:
                rec.evaluating(name, split, sl)
            with autocast():
                logits = model([x[sl] for x in split.x], split.mask[sl])
            out.append(logits.float().cpu())
    return torch.cat(out).numpy()


DETERMINISM_ROWS = 64


def determinism_probe(model: ClipClassifier, split: SplitData, autocast, rec: Recorder) -> float:
    """Evaluate the first rows of `split` twice: any difference means evaluation is stochastic
    (dropout or noise active at evaluation)."""
    n = min(DETERMINISM_ROWS, split.y.shape[0])
    head = SplitData([x[:n] for x in split.x], split.mask[:n], split.y[:n], split.ids[:n])
    a = predict(model, head, autocast, rec, "determinism")
    b = predict(model, head, autocast, rec, "determinism")
    return float(np.abs(a - b).max()) if n else 0.0


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from the head's logits: (N,) → σ(z) = P(1); (N, K) → softmax."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Scored:
    """One split scored by the model: its ids, integer labels, probabilities and every metric of
    the task (orze.metrics), keyed by bare metric name."""
    ids: list[str]
    labels: np.ndarray
    probs: np.ndarray
    values: dict[str, float]


def score_split(model: ClipClassifier, split: SplitData, autocast, task: TaskConfig, classes: int,
                rec: Recorder | None = None, name: str = "") -> Scored:
    probs = probabilities(predict(model, split, autocast, rec, name))
    labels = split.y.cpu().numpy().round().astype(np.int64)
    values = compute_all(labels, probs, task.type, classes, prefix="")
    return Scored(list(split.ids), labels, probs, values)


def save_scored(path: Path, scored: dict[str, Scored]) -> None:
    """The run's predictions.npz (orze.predictions) from the scored splits."""
    save_predictions(path, {split: (s.ids, s.labels, s.probs) for split, s in scored.items()})
