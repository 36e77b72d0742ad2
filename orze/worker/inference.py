"""Scoring new clips with a finished run's kept weights (runs/exp/<id>/weights.pt).

`load_run_model` rebuilds the classifier the run trained (the configuration, input dims and head
it saved) and loads the selected epoch's weights; `score_features` reads each backbone's store
under a features directory, standardises it with the run's training-split statistics, fits it to
the run's seq_len exactly as training and evaluation did (orze.worker.data.fit_length), and
returns class probabilities. `orze predict` (orze.cli.predict) is the command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orze.features.store import FeatureStoreError, open_store
from orze.layout import RUN_WEIGHTS, STORE_META
from orze.worker.data import fit_length
from orze.worker.evaluate import probabilities
from orze.worker.model import ClipClassifier, build_model

BATCH = 512


class InferenceError(ValueError):
    """The run kept no usable weights, or the features do not fit them; the message says which."""


@dataclass
class RunModel:
    model: ClipClassifier
    saved: dict[str, Any]       # weights.pt's contents besides the weights

    @property
    def backbones(self) -> list[str]:
        return list(self.saved["backbones"])


def load_run_model(run_dir: Path, device: str = "cpu") -> RunModel:
    path = Path(run_dir) / RUN_WEIGHTS
    if not path.exists():
        raise InferenceError(f"{path}: not found; the run kept no weights (worker.keep_weights: none, "
                             f"a custom worker, or a run recorded before weights were kept)")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:   # a damaged or foreign file: say so rather than a pickle traceback
        raise InferenceError(f"{path}: unreadable weights ({type(e).__name__}: {e})") from None
    model = build_model(saved["config"], saved["dims"], saved["priors"], saved["outputs"])
    model.load_state_dict(saved["state_dict"])
    model.to(device).eval()
    return RunModel(model, {k: v for k, v in saved.items() if k != "state_dict"})


def _store_dir(features: Path, backbone: str, single: bool) -> Path:
    """features/<backbone>/, or `features` itself when it is one store and one backbone is needed."""
    if (features / backbone / STORE_META).exists() or not single or not (features / STORE_META).exists():
        return features / backbone
    return features


@torch.no_grad()
def score_features(run: RunModel, features: Path, device: str = "cpu") -> tuple[list[str], np.ndarray]:
    """(clip ids, probabilities) for every clip the run's backbone store(s) under `features` hold
    (with fused backbones, the clips every store has, in the first store's order)."""
    features = Path(features)
    stores = []
    for b in run.backbones:
        try:
            stores.append(open_store(_store_dir(features, b, len(run.backbones) == 1), b))
        except FeatureStoreError as e:
            raise InferenceError(f"{e} (the run trained on {', '.join(run.backbones)})") from None
    for s, d in zip(stores, run.saved["dims"]):
        if s.dim != d:
            raise InferenceError(f"{s.path}: {s.dim} features per frame; the run trained on {d} for '{s.backbone}'")
    common = set.intersection(*(set(s.ids) for s in stores))
    ids = [c for c in stores[0].ids if c in common]
    if not ids:
        raise InferenceError(f"{features}: the stores share no clip ids")
    seq_len = int(run.saved["config"]["seq_len"])
    out = []
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        xs, mask = [], None
        for s in stores:
            mean, std = run.saved["standardisation"][s.backbone]
            x = (torch.from_numpy(s.read(s.rows(chunk))) - mean.cpu()) / std.cpu()
            fitted, mask = fit_length(x, seq_len)
            xs.append(fitted.to(device))
        out.append(run.model(xs, mask.to(device)).float().cpu())
    return ids, probabilities(torch.cat(out).numpy())
