"""Synthetic dashcam-like frame features. SYNTHETIC DATA: no video, no real backbone was involved.

Shaped like the reference dataset (1,500 clips, 50% positive, an 80/10/10 split by clip, T = 20)
with several "backbones" of different dimension and informativeness, so a search has real
structure to find:

- Every clip has a latent per-frame state: a smooth ego-motion walk m_t, a scene appearance a_t,
  and for positives a collision at frame t0 (a step plus a decaying transient in two motion
  directions, with a random sign) and a looming-object cue in appearance around t0.
- The "video" backbone (vjepa2) sees motion changes Δm_t strongly: its signal is temporal. Its
  per-frame marginals barely differ between classes (the sign is random), so order-blind pooling
  of raw frames does poorly and a temporal encoder does well.
- The "image" backbones see the per-frame looming cue with backbone-specific strength
  (dinov3_l > siglip2 > dinov3_b > dinov2_b > convnext) and motion only weakly.
- 4% of labels are flipped, so no configuration reaches AP = 1.

Each backbone's features are a fixed random projection of its latent view plus isotropic noise,
stored as float16. Everything is a deterministic function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orze.features.store import Clip, split_grouped, write_clips, write_store
from orze.layout import Layout


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    dim: int
    motion_delta: float   # weight of Δm_t (temporal signal)
    motion: float         # weight of m_t
    looming: float        # weight of the per-frame looming cue
    noise: float          # isotropic noise std in feature space


BACKBONES = (
    BackboneSpec("vjepa2", 1024, motion_delta=1.0, motion=0.5, looming=0.15, noise=1.0),
    BackboneSpec("dinov3_l", 1024, motion_delta=0.05, motion=0.1, looming=0.3, noise=1.0),
    BackboneSpec("siglip2", 1152, motion_delta=0.05, motion=0.1, looming=0.25, noise=1.0),
    BackboneSpec("dinov3_b", 768, motion_delta=0.05, motion=0.1, looming=0.2, noise=1.0),
    BackboneSpec("dinov2_b", 768, motion_delta=0.05, motion=0.1, looming=0.16, noise=1.0),
    BackboneSpec("convnext", 1024, motion_delta=0.05, motion=0.1, looming=0.12, noise=1.0),
)
VIEW_NOISE = 0.5  # per-backbone nuisance in the latent view: cannot be averaged away over D

LATENT_MOTION = 8
LATENT_SCENE = 16


def make_clips(n_clips: int, rng: np.random.Generator) -> list[Clip]:
    labels = np.array([1] * (n_clips // 2) + [0] * (n_clips - n_clips // 2))
    rng.shuffle(labels)
    clips = []
    # Stratified 80/10/10 split by clip id: each class is cut separately.
    split_of = np.empty(n_clips, dtype=object)
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_tr, n_va = int(round(0.8 * len(idx))), int(round(0.1 * len(idx)))
        split_of[idx[:n_tr]] = "train"
        split_of[idx[n_tr:n_tr + n_va]] = "val"
        split_of[idx[n_tr + n_va:]] = "test"
    for i in range(n_clips):
        clips.append(Clip(f"clip{i:05d}", int(labels[i]), str(split_of[i])))
    return clips


def latent_views(labels: np.ndarray, frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(labels)
    # Ego motion: AR(1) smooth walk.
    m = np.zeros((n, frames, LATENT_MOTION))
    step = rng.normal(0, 0.3, size=(n, frames, LATENT_MOTION))
    for t in range(1, frames):
        m[:, t] = 0.9 * m[:, t - 1] + step[:, t]
    loom = np.zeros((n, frames))
    t0 = rng.integers(frames // 3, frames - 2, size=n)
    sign = rng.choice([-1.0, 1.0], size=(n, 2))
    tt = np.arange(frames)[None, :]
    after = (tt >= t0[:, None]).astype(float)
    transient = after * np.exp(-(tt - t0[:, None]).clip(min=0) / 2.0)
    pos = labels == 1
    # Collision: a step and a decaying jolt in motion dims 0 and 1, random sign.
    for j in range(2):
        m[pos, :, j] += sign[pos, j:j + 1] * (0.8 * after[pos] + 1.5 * transient[pos])
    # Near-miss distractors: a third of negatives get a smooth (not abrupt) swerve.
    near = (~pos) & (rng.random(n) < 0.33)
    ramp = ((tt - t0[:, None]) / 6.0).clip(0, 1)
    m[near, :, 0] += sign[near, :1] * 0.5 * ramp[near]
    # Looming object: a bump in appearance around t0 for positives, weaker for near misses.
    bump = np.exp(-0.5 * ((tt - t0[:, None]) / 2.0) ** 2)
    loom[pos] = bump[pos]
    loom[near] = 0.5 * bump[near]
    dm = np.diff(m, axis=1, prepend=m[:, :1])
    scene = rng.normal(0, 1, size=(n, 1, LATENT_SCENE)) + rng.normal(0, 0.2, size=(n, frames, LATENT_SCENE))
    return {"m": m, "dm": dm, "loom": loom, "scene": scene}


def backbone_features(spec: BackboneSpec, views: dict[str, np.ndarray],
                      rng: np.random.Generator) -> np.ndarray:
    n, frames, _ = views["m"].shape
    loom_dirs = 4
    latent = np.concatenate([
        spec.motion_delta * views["dm"],
        spec.motion * views["m"],
        spec.looming * views["loom"][..., None] * np.ones(loom_dirs),
        views["scene"],
    ], axis=-1)
    latent = latent + rng.normal(0, VIEW_NOISE, size=latent.shape) * (np.arange(latent.shape[-1]) < 2 * LATENT_MOTION + loom_dirs)
    k = latent.shape[-1]
    proj = rng.normal(0, 1.0, size=(k, spec.dim)) * (3.0 / np.sqrt(k))
    out = np.empty((n, frames, spec.dim), dtype=np.float16)
    for start in range(0, n, 256):  # chunked to bound memory at large dims
        chunk = latent[start:start + 256] @ proj
        chunk += rng.normal(0, spec.noise, size=chunk.shape)
        out[start:start + 256] = chunk.astype(np.float16)
    return out


def generate(layout: Layout, n_clips: int = 1500, frames: int = 20, seed: int = 0,
             backbones: tuple[str, ...] | None = None, label_noise: float = 0.04,
             progress=None) -> dict[str, int]:
    """Write features/clips.csv and one store per backbone; returns {backbone: dim}."""
    rng = np.random.default_rng(seed)
    clips = make_clips(n_clips, rng)
    true_labels = np.array([c.label for c in clips])
    views = latent_views(true_labels, frames, rng)
    flip = rng.random(n_clips) < label_noise
    observed = np.where(flip, 1 - true_labels, true_labels)
    clips = [Clip(c.clip_id, int(y), c.split) for c, y in zip(clips, observed)]
    layout.features.mkdir(parents=True, exist_ok=True)
    write_clips(layout.clips_csv, clips)
    ids = [c.clip_id for c in clips]
    position = {cid: i for i, cid in enumerate(ids)}
    rows = np.array([position[cid] for cid in split_grouped(ids, clips)], dtype=np.int64)
    written = {}
    chosen = [b for b in BACKBONES if backbones is None or b.name in backbones]
    for spec in chosen:
        # Each backbone draws from its own stream, so the subset generated does not change values.
        sub = np.random.default_rng([seed, sum(map(ord, spec.name))])
        feats = backbone_features(spec, views, sub)
        # Stored grouped by split (each split one contiguous block, read as one slice).
        write_store(layout.backbone_dir(spec.name), spec.name, [ids[i] for i in rows], feats[rows], {
            "model_id": f"synthetic/{spec.name}", "synthetic": True, "fps": 5.0, "seed": seed,
            "preprocessing": "synthetic latent projection (orze.demo.synth)",
        })
        written[spec.name] = spec.dim
        if progress:
            progress(spec.name)
    return written
