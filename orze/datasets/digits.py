"""scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes) as a clip-classification task.

Each image is read as a clip of 8 frames (its pixel rows, top to bottom) of 8 features (the
pixels of a row), so a temporal model sees the digit stroke by stroke while a model that pools
over frames first loses where each row was. With `lengths=(lo, hi)` every clip keeps only its
first L ~ U{lo..hi} rows (a variable-length variant; ragged import is orze.features' job).

`write_source` writes what a user brings to `orze features import`: one <clip_id>.npy per clip
(T, 8) and a labels CSV (clip_id,label,split; a stratified 60/20/20 split). `pooled_baseline` is
the reference a campaign must beat: mean and std over each clip's frames → standardised →
scikit-learn's LogisticRegression, fitted on train, accuracy on val and test.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FRAMES = 8
DIM = 8
BACKBONE = "digits"


@dataclass
class Digits:
    ids: list[str]
    clips: list[np.ndarray]      # (T_i, 8) float32 each
    labels: np.ndarray           # (N,) int 0..9
    splits: list[str]            # train | val | test per clip


def load(seed: int = 0, lengths: tuple[int, int] | None = None) -> Digits:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images.astype(np.float32) / 16.0)            # (N, 8, 8): frames = rows
    y = data.target.astype(np.int64)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.4, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    split = np.empty(len(y), dtype=object)
    split[train], split[val], split[test] = "train", "val", "test"
    rng = np.random.default_rng(seed)
    clips = []
    for i in idx:
        t = FRAMES if lengths is None else int(rng.integers(lengths[0], lengths[1] + 1))
        clips.append(np.ascontiguousarray(x[i, :t]))
    return Digits([f"d{i:04d}" for i in idx], clips, y, [str(s) for s in split])


def write_source(directory: Path, seed: int = 0, lengths: tuple[int, int] | None = None) -> tuple[Path, Path]:
    """(features directory of <clip_id>.npy files, labels CSV) under `directory`."""
    d = load(seed, lengths)
    feats = Path(directory) / "digits_npy"
    feats.mkdir(parents=True, exist_ok=True)
    for cid, clip in zip(d.ids, d.clips):
        np.save(feats / f"{cid}.npy", clip)
    labels = Path(directory) / "digits_labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "label", "split"])
        for cid, y, s in zip(d.ids, d.labels, d.splits):
            w.writerow([cid, int(y), s])
    return feats, labels


def pooled_baseline(d: Digits, seed: int = 0) -> dict[str, float]:
    """Validation and test accuracy of LogisticRegression on [mean, std] over each clip's frames."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    feats = np.stack([np.concatenate([c.mean(axis=0), c.std(axis=0)]) for c in d.clips])
    split = np.asarray(d.splits)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, random_state=seed))
    model.fit(feats[split == "train"], d.labels[split == "train"])
    return {s: float(model.score(feats[split == s], d.labels[split == s])) for s in ("val", "test")}


# The campaign of tests/daemon/test_digits.py and scripts/campaign_digits.py: a handful of small
# configurations on CPU (seconds each), varying what matters for this task.
CAMPAIGN = [
    {"idea_name": "retnet attention", "temporal_encoder": "retnet", "pooling": "attention"},
    {"idea_name": "retnet mean, ce", "temporal_encoder": "retnet", "pooling": "mean", "loss": "bce"},
    {"idea_name": "xlstm last, smoothing", "temporal_encoder": "xlstm", "pooling": "last",
     "loss": "label_smoothing"},
    {"idea_name": "retnet attention, mixup", "temporal_encoder": "retnet", "pooling": "attention",
     "mixup_alpha": 0.2, "oversample_ratio": 2.0},
]
COMMON = {"backbone": BACKBONE, "seq_len": FRAMES, "d_model": 32, "num_layers": 1, "num_heads": 2,
          "epochs": 20, "patience": 5, "batch_size": 64, "learning_rate": 3.0e-3, "dropout": 0.1,
          "scheduler": "cosine"}


def ideas() -> list[dict]:
    return [{**COMMON, **i} for i in CAMPAIGN]


def make_research_dir(root: Path, seed: int = 0, lengths: tuple[int, int] | None = None,
                      metric: str = "accuracy", cpu_slots: int = 2) -> tuple[Path, Path]:
    """A research directory (`orze init`) set up for the digits task: the space's backbone is
    `digits`, task.type multiclass with `metric`; returns the (features source, labels CSV) to
    import with `orze features import -b digits --from SOURCE --labels LABELS`."""
    import yaml

    from orze.cli.init import init_directory
    from orze.layout import Layout

    root = Path(root)
    init_directory(root)
    layout = Layout.at(root)
    space = yaml.safe_load(layout.space_config.read_text())
    space["dimensions"]["backbone"].update(choices=[BACKBONE], default=BACKBONE)
    space["dimensions"]["seq_len"]["default"] = FRAMES
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["task"] = {"name": "digits", "type": "multiclass", "metric": metric}
    proj["agents"] = []
    proj["sweeps"] = {"enabled": False}
    proj["scheduler"].update({"cpu_slots": cpu_slots, "poll_s": 0.2})
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    return write_source(root / "import", seed, lengths)
