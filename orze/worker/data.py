"""Loading an experiment's data: features for its backbone(s), the split, sequence handling.

- The split comes only from features/clips.csv; the worker records each split's size and a hash
  of its sorted clip ids, which the daemon recomputes independently (a leak changes a hash).
- Standardisation statistics come from the training split only.
- One function, `fit_length`, crops or pads sequences for training AND evaluation, so the two can
  never disagree (the reference campaign lost runs to an eval padding mismatch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orze.features.store import SPLITS, FeatureStoreError, open_store, read_clips, split_hash
from orze.layout import Layout

SEQUENCE_MODE = "centre-crop/zero-pad+mask"


def split_ids(clips_csv: Path) -> dict[str, list[str]]:
    """clip ids per split, validated disjoint (a clip listed in two splits is an error)."""
    out: dict[str, list[str]] = {s: [] for s in SPLITS}
    seen: dict[str, str] = {}
    for c in read_clips(clips_csv):
        if c.clip_id in seen:
            raise FeatureStoreError(
                f"{clips_csv}: clip '{c.clip_id}' appears in '{seen[c.clip_id]}' and '{c.split}'")
        seen[c.clip_id] = c.split
        out[c.split].append(c.clip_id)
    return out


def fit_length(x: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, D) → (N, seq_len, D) and a (N, seq_len) bool mask of real frames.

    Longer clips are centre-cropped; shorter ones are zero-padded at the end and masked.
    """
    n, t, d = x.shape
    if t >= seq_len:
        start = (t - seq_len) // 2
        return x[:, start:start + seq_len], torch.ones(n, seq_len, dtype=torch.bool, device=x.device)
    pad = torch.zeros(n, seq_len - t, d, dtype=x.dtype, device=x.device)
    mask = torch.zeros(n, seq_len, dtype=torch.bool, device=x.device)
    mask[:, :t] = True
    return torch.cat([x, pad], dim=1), mask


@dataclass
class SplitData:
    x: list[torch.Tensor]          # one (N, seq_len, D_b) tensor per backbone, standardised
    mask: torch.Tensor             # (N, seq_len) bool
    y: torch.Tensor                # (N,) float
    ids: list[str]


@dataclass
class ExperimentData:
    backbones: list[str]
    dims: list[int]
    splits: dict[str, SplitData]
    info: dict = field(default_factory=dict)   # what was loaded, for effective_config.json

    @property
    def positive_rate(self) -> float:
        return float(self.splits["train"].y.mean())


def load_experiment_data(layout: Layout, backbones: list[str], seq_len: int,
                         device: torch.device) -> ExperimentData:
    ids = split_ids(layout.clips_csv)
    labels = {c.clip_id: c.label for c in read_clips(layout.clips_csv)}
    for s in SPLITS:
        if not ids[s]:
            raise FeatureStoreError(f"{layout.clips_csv}: the '{s}' split is empty")
    per_split: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    feature_info = []
    frames = None
    for b in backbones:
        store = open_store(layout.backbone_dir(b), b)
        if frames is not None and store.frames != frames:
            raise FeatureStoreError(
                f"{store.path}: {store.frames} frames per clip, but another fused backbone has {frames}")
        frames = store.frames
        arrays = {s: torch.from_numpy(np.asarray(store.array[store.rows(ids[s])], dtype=np.float32))
                  for s in SPLITS}
        if not all(torch.isfinite(a).all() for a in arrays.values()):
            raise FeatureStoreError(f"{store.path}/features.npy: NaN or inf values")
        mean = arrays["train"].mean(dim=(0, 1))
        std = arrays["train"].std(dim=(0, 1)).clamp(min=1e-6)
        for s in SPLITS:
            per_split[s].append(((arrays[s] - mean) / std).to(device))
        feature_info.append({"backbone": b, "dim": store.dim, "frames": store.frames,
                             "model_id": store.meta.get("model_id"),
                             "synthetic": bool(store.meta.get("synthetic", False))})
    splits = {}
    for s in SPLITS:
        xs, mask = [], None
        for x in per_split[s]:
            fitted, mask = fit_length(x, seq_len)
            xs.append(fitted)
        y = torch.tensor([labels[c] for c in ids[s]], dtype=torch.float32, device=device)
        splits[s] = SplitData(xs, mask, y, ids[s])
    info = {
        "features": feature_info,
        "split_sizes": {s: len(ids[s]) for s in SPLITS},
        "split_hashes": {s: split_hash(splits[s].ids) for s in SPLITS},
        "split_positives": {s: int(splits[s].y.sum().item()) for s in SPLITS},
        "stored_frames": frames,
    }
    return ExperimentData(list(backbones), [f["dim"] for f in feature_info], splits, info)
