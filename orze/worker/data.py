"""Loading an experiment's data: features for its backbone(s), the split, sequence handling.

- The split comes only from features/clips.csv; the worker records each split's size and a hash
  of its sorted clip ids, which the daemon recomputes independently (a leak changes a hash).
- Standardisation statistics come from the training split only.
- One function, `fit_length`, crops or pads sequences for training AND evaluation, so the two can
  never disagree (the reference campaign lost runs to an eval padding mismatch).
- Variable-length clips: the mask comes from the store's per-clip lengths (orze.features.store), so
  stored padding never enters the standardisation statistics, the normalisation evidence, pooling,
  attention or the loss; padded positions hold zeros after standardisation.
- The `seq_len` policy (docs/features.md): a clip shorter than `seq_len` is zero-padded at the end
  and masked; a longer one is cropped to its centre `seq_len` real frames — the same frames at
  training and at every evaluation (deterministic, no random crop). `sequence_lengths` in
  effective_config.json records the policy, the lengths seen per split and the share of real frames
  the crop dropped; the daemon recomputes them from the store.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orze.features.store import SPLITS, FeatureStoreError, open_store, read_clips, split_hash
from orze.layout import STORE_LENGTHS, Layout
from orze.worker.cache import FeatureCache, file_key

SEQUENCE_MODE = "centre-crop/zero-pad+mask"
CROP_POLICY = "centre"   # fixed: longer clips keep their centre seq_len real frames, train and eval


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


def real_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(N,) lengths → (N, frames) bool mask of the real (non-padding) leading frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def fit_length(x: torch.Tensor, seq_len: int,
               lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, T, D) → (N, seq_len, D) and a (N, seq_len) bool mask of real frames.

    `lengths` (N,) are the real frames of each row (None: all T). A clip longer than `seq_len`
    keeps its centre `seq_len` real frames; a shorter one keeps all of them, then zero padding
    (masked). The result depends only on the real frames, never on what padding the store holds.
    """
    n, t, d = x.shape
    if lengths is None or bool((lengths == t).all()):
        # every clip full length: a view when cropping (no copy of a warm worker's cached tensors)
        if t >= seq_len:
            start = (t - seq_len) // 2
            return x[:, start:start + seq_len], torch.ones(n, seq_len, dtype=torch.bool, device=x.device)
        pad = torch.zeros(n, seq_len - t, d, dtype=x.dtype, device=x.device)
        mask = torch.zeros(n, seq_len, dtype=torch.bool, device=x.device)
        mask[:, :t] = True
        return torch.cat([x, pad], dim=1), mask
    lengths = lengths.to(x.device)
    starts = torch.div((lengths - seq_len).clamp(min=0), 2, rounding_mode="floor")
    pos = starts[:, None] + torch.arange(seq_len, device=x.device)[None, :]     # (N, seq_len)
    mask = pos < lengths[:, None]
    fitted = torch.gather(x, 1, pos.clamp(max=t - 1)[..., None].expand(n, seq_len, d))
    return fitted.masked_fill(~mask[..., None], 0.0), mask


def length_summary(lengths: torch.Tensor, seq_len: int) -> dict:
    """Lengths seen in one split and what `seq_len` does to them: min/mean/max real frames, the
    share of real frames the centre crop drops, and the share of fitted positions that are padding."""
    lens = lengths.double()
    kept = lens.clamp(max=seq_len)
    total = float(lens.sum())
    return {"min": int(lens.min()), "mean": round(float(lens.mean()), 4), "max": int(lens.max()),
            "frames_dropped": round(float((lens - kept).sum()) / total, 6) if total else 0.0,
            "padding": round(1.0 - float(kept.sum()) / (seq_len * len(lens)), 6) if len(lens) else 0.0}


def sequence_note(seq_info: dict) -> str:
    """One train.log line: the seq_len policy and what it did to each split's clips."""
    parts = [f"{s} len {v['min']}/{v['mean']:.1f}/{v['max']} dropped {100 * v['frames_dropped']:.1f}% "
             f"padding {100 * v['padding']:.1f}%" for s, v in seq_info["splits"].items()]
    return (f"sequence: seq_len={seq_info['seq_len']} {seq_info['mode']} (crop {seq_info['crop']}, same "
            f"frames at eval); min/mean/max real frames: " + "; ".join(parts))


def masked_moments(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and (unbiased) std over the real frames of (N, T, D) only: two passes
    over chunks of clips, each selecting its real frames (in row order) and summing in float64, so
    the result depends on the real frames alone (not on T or the padding) and no full-size
    temporary is made."""
    n, t, d = x.shape
    chunks = [(i, min(n, i + 4096)) for i in range(0, n, 4096)]

    def real(a: int, b: int) -> torch.Tensor:
        return x[a:b][real_mask(lengths[a:b], t)].double()     # (real frames in the chunk, D)

    count = int(lengths.clamp(max=t).sum())
    mean = sum((real(a, b).sum(0) for a, b in chunks), torch.zeros(d, dtype=torch.float64))
    mean = mean / max(count, 1)
    ss = sum((((real(a, b) - mean) ** 2).sum(0) for a, b in chunks), torch.zeros(d, dtype=torch.float64))
    std = (ss / max(count - 1, 1)).sqrt()
    return mean.to(x.dtype), std.to(x.dtype)


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
    cache_hits: list[bool] = field(default_factory=list)  # per backbone, with a warm worker's cache
    # Row 0 of each split, standardised but before sequence fitting (first backbone): the frames
    # that reach the model are matched against it (orze.worker.evidence).
    unfitted: dict[str, torch.Tensor] = field(default_factory=dict)
    evidence_s: float = 0.0   # seconds spent computing the evidence above (verification's cost)
    # per backbone, the training split's (mean, std) the features were standardised with
    standardisation: dict = field(default_factory=dict)

    @property
    def positive_rate(self) -> float:
        return float(self.splits["train"].y.mean())


def read_split_table(clips_csv: Path) -> tuple[dict[str, list[str]], dict[str, int]]:
    """(clip ids per split, label per clip id) from features/clips.csv, checked."""
    ids = split_ids(clips_csv)
    for s in SPLITS:
        if not ids[s]:
            raise FeatureStoreError(f"{clips_csv}: the '{s}' split is empty")
    return ids, {c.clip_id: c.label for c in read_clips(clips_csv)}


STANDARDISATION = "_standardisation"   # load_backbone's (mean, std), kept out of effective_config
PROBE_ROWS = 3   # rows per split whose stored bytes are hashed for the daemon to recompute


def labels_hash(ids: list[str], y) -> str:
    """Hash of the (clip id, label) pairs as the worker holds them, order-free but pair-bound:
    labels misaligned with their rows change it. The daemon computes it from features/clips.csv."""
    pairs = sorted(f"{c}:{int(round(float(v)))}" for c, v in zip(ids, y))
    return hashlib.sha256("\n".join(pairs).encode()).hexdigest()[:16]


def row_hash(row: np.ndarray) -> str:
    """Hash of one clip's stored features as read (float32 bytes)."""
    return hashlib.sha256(np.ascontiguousarray(row, dtype=np.float32).tobytes()).hexdigest()[:16]


def normalisation_evidence(train: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
    """How far the standardised training features are from mean 0 / std 1 per dimension (over
    non-constant dimensions, over real frames only when `lengths` are given): ~0 only if the
    statistics came from the training rows' real frames alone.

    Memoised on the tensor itself while it is unmodified (its version counter): a warm worker's
    cached tensors are measured once, and any in-place change is measured again."""
    memo = getattr(train, "_orze_normalisation", None)
    if memo is not None and memo[0] == train._version:
        return dict(memo[1])
    out = _normalisation(train, lengths)
    train._orze_normalisation = (train._version, out)
    return dict(out)


def _normalisation(train: torch.Tensor, lengths: torch.Tensor | None = None) -> dict:
    t, d = train.shape[1], train.shape[-1]
    # Column sums and sums of squares as matrix products (BLAS; ~15x a reduction on CPU), over
    # chunks of clips to bound the temporary; padded frames are left out.
    s1 = torch.zeros(d, dtype=torch.float64, device=train.device)
    s2 = torch.zeros_like(s1)
    n = 0
    step = max(1, 8192 // max(t, 1))
    for start in range(0, train.shape[0], step):
        chunk = train[start:start + step].float()
        if lengths is not None:
            chunk = chunk[real_mask(lengths[start:start + step].to(train.device), t)]
        chunk = chunk.reshape(-1, d)
        n += chunk.shape[0]
        ones = torch.ones(1, chunk.shape[0], device=chunk.device)
        s1 += (ones @ chunk).squeeze(0).double()
        s2 += (ones @ (chunk * chunk)).squeeze(0).double()
    mean = s1 / max(n, 1)
    std = ((s2 - n * mean * mean).clamp(min=0) / max(n - 1, 1)).sqrt()
    live = std > 1e-3
    if not bool(live.any()):
        return {"train_mean_abs_max": 0.0, "train_std_dev_max": 0.0, "dims": 0}
    return {"train_mean_abs_max": float(mean[live].abs().max()),
            "train_std_dev_max": float((std[live] - 1).abs().max()), "dims": int(live.sum())}


def load_backbone(layout: Layout, backbone: str, ids: dict[str, list[str]], device: torch.device
                  ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """One backbone's splits as standardised float32 tensors on `device` (statistics from the
    real frames of the training split only; padded frames set to 0), each split's clip lengths,
    and what was loaded for effective_config.json."""
    store = open_store(layout.backbone_dir(backbone), backbone)
    rows = {s: store.rows(ids[s]) for s in SPLITS}
    arrays = {s: torch.from_numpy(store.read(rows[s])) for s in SPLITS}
    lens = {s: torch.from_numpy(store.lengths[rows[s]].astype(np.int64)) for s in SPLITS}
    if not all(torch.isfinite(a).all() for a in arrays.values()):
        raise FeatureStoreError(f"{store.path}/features.npy: NaN or inf values")
    if store.ragged:
        mean, std = masked_moments(arrays["train"], lens["train"])
        std = std.clamp(min=1e-6)
    else:   # every clip full length: the plain moments (bit-identical to stores before lengths)
        mean = arrays["train"].mean(dim=(0, 1))
        std = arrays["train"].std(dim=(0, 1)).clamp(min=1e-6)
    out = {s: ((arrays[s] - mean) / std) for s in SPLITS}
    if store.ragged:
        out = {s: x.masked_fill(~real_mask(lens[s], store.frames)[..., None], 0.0) for s, x in out.items()}
    out = {s: x.to(device) for s, x in out.items()}
    info = {"backbone": backbone, "dim": store.dim, "frames": store.frames, "ragged": store.ragged,
            "model_id": store.meta.get("model_id"), "synthetic": bool(store.meta.get("synthetic", False)),
            STANDARDISATION: (mean, std),
            # the stored bytes of the first rows of each split as read, for the daemon to recompute
            "rows": {s: [[ids[s][i], row_hash(arrays[s][i].numpy())]
                         for i in range(min(PROBE_ROWS, len(ids[s])))] for s in SPLITS}}
    return out, {s: v.to(device) for s, v in lens.items()}, info


def load_experiment_data(layout: Layout, backbones: list[str], seq_len: int,
                         device: torch.device, cache: FeatureCache | None = None) -> ExperimentData:
    """The experiment's splits, fitted to `seq_len`. With a cache (a warm worker), the split
    table and each backbone's standardised tensors are reused while their files are unchanged."""
    csv_key = file_key(layout.clips_csv)
    if cache is not None and csv_key is not None:
        ids, labels = cache.get(("clips", str(layout.clips_csv), csv_key),
                                lambda: read_split_table(layout.clips_csv))
    else:
        ids, labels = read_split_table(layout.clips_csv)
    per_split: dict[str, list[torch.Tensor]] = {s: [] for s in SPLITS}
    feature_info = []
    evidence_s = 0.0
    frames = None
    lengths: dict[str, torch.Tensor] | None = None
    hits = []
    stats: dict = {}
    for b in backbones:
        if cache is not None:
            bdir = layout.backbone_dir(b)
            key = ("backbone", str(bdir), csv_key, str(device),
                   tuple(file_key(bdir / n) for n in ("features.npy", "clips.txt", "meta.json", STORE_LENGTHS)))
            tensors, lens, info = cache.get(key, lambda: load_backbone(layout, b, ids, device))
            hits.append(cache.last_hit)
        else:
            tensors, lens, info = load_backbone(layout, b, ids, device)
        if frames is not None and info["frames"] != frames:
            raise FeatureStoreError(
                f"{layout.backbone_dir(b)}: {info['frames']} frames per clip, but another fused "
                f"backbone has {frames}")
        if lengths is not None:
            check_same_lengths(layout, backbones[0], b, ids, lengths, lens)
        frames = info["frames"]
        if lengths is None:
            lengths = lens
        stats[b] = info[STANDARDISATION]
        info = {k: v for k, v in info.items() if k != STANDARDISATION}
        for s in SPLITS:
            per_split[s].append(tensors[s])
        t_ev = time.perf_counter()
        feature_info.append({**info, "normalisation": normalisation_evidence(
            tensors["train"], lens["train"] if info["ragged"] else None)})
        evidence_s += time.perf_counter() - t_ev
    splits = {}
    for s in SPLITS:
        xs, mask = [], None
        for x in per_split[s]:
            fitted, mask = fit_length(x, seq_len, lengths[s])
            xs.append(fitted)
        y = torch.tensor([labels[c] for c in ids[s]], dtype=torch.float32, device=device)
        splits[s] = SplitData(xs, mask, y, ids[s])
    info = {
        "features": feature_info,
        "split_sizes": {s: len(ids[s]) for s in SPLITS},
        "split_hashes": {s: split_hash(splits[s].ids) for s in SPLITS},
        "split_positives": {s: int(splits[s].y.sum().item()) for s in SPLITS},
        "stored_frames": frames,
        "sequence_lengths": {"mode": SEQUENCE_MODE, "crop": CROP_POLICY, "seq_len": int(seq_len),
                             "ragged": any(f["ragged"] for f in feature_info),
                             "splits": {s: length_summary(lengths[s], seq_len) for s in SPLITS}},
    }
    t_ev = time.perf_counter()
    info["labels_hashes"] = {s: labels_hash(splits[s].ids, splits[s].y.cpu().tolist()) for s in SPLITS}
    evidence_s += time.perf_counter() - t_ev
    # row 0's real frames only: the frames matched against what reached the model
    unfitted = {s: per_split[s][0][0][:int(lengths[s][0])] for s in SPLITS
                if per_split[s] and len(per_split[s][0])}
    return ExperimentData(list(backbones), [f["dim"] for f in feature_info], splits, info, hits, unfitted,
                          evidence_s, stats)


def check_same_lengths(layout: Layout, first: str, other: str, ids: dict[str, list[str]],
                       want: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> None:
    """Fused backbones must agree on every clip's length (one mask serves them all)."""
    for s in SPLITS:
        diff = torch.nonzero(want[s] != got[s])
        if len(diff):
            i = int(diff[0])
            raise FeatureStoreError(
                f"{layout.backbone_dir(other)}: clip '{ids[s][i]}' has {int(got[s][i])} frames, but "
                f"{int(want[s][i])} in the fused backbone '{first}' (lengths.npy must agree)")
