"""Synthetic leaderboard rows for tests and benchmarks of the analysis (never for results).

`synthetic_rows(n, seed)` simulates a two-agent campaign over the default space's dimensions: the
metric is a known backbone effect + encoder effect + small training-knob effects + Gaussian run
noise, and the agents drift from broad exploration toward the best backbone, so the curves, the
variance shares and the entropy have the shapes the analysis is built to measure. Every row has the
leaderboard's ROW_KEYS schema; configs are canonical (defaults filled) for the default space.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orze.space.fingerprint import fingerprint

BACKBONE_EFFECT = {"vjepa2": 0.12, "dinov3_l": 0.05, "siglip2": 0.03, "dinov2_b": 0.0,
                   "convnext": -0.03, "dinov3_b": -0.08}
ENCODER_EFFECT = {"zipformer": 0.03, "retnet": 0.02, "hybrid": 0.01, "bimamba": 0.0, "xlstm": -0.02}
POOLING_EFFECT = {"attention": 0.01, "mean": 0.0, "max": 0.0, "last": -0.01}
BASE = 0.72


DISCRETE = {"pooling": list(POOLING_EFFECT), "loss": ["focal", "bce", "label_smoothing"],
            "batch_size": [16, 32, 64, 128], "scheduler": ["cosine", "linear", "step"],
            "seq_len": [8, 12, 16, 20, 24], "epochs": [5, 10, 15, 20, 30]}


def _choices(space) -> dict[str, list]:
    """The discrete choices to draw from: the given space's where it has the dimension."""
    out = {k: list(v) for k, v in DISCRETE.items()}
    if space is not None:
        for k in out:
            dim = space.dimensions.get(k)
            if dim is not None and dim.choices:
                out[k] = list(dim.choices)
    return out


def _config(rng: np.random.Generator, backbone: str, encoder: str, seed: int,
            lr_spread: float = 1.5, choices: dict[str, list] | None = None) -> dict[str, Any]:
    ch = choices or DISCRETE
    pick = {k: ch[k][int(rng.integers(len(ch[k])))] for k in ch}
    loss = str(pick["loss"])
    cfg: dict[str, Any] = {
        "backbone": backbone, "temporal_encoder": encoder,
        "pooling": str(pick["pooling"]), "loss": loss,
        "batch_size": int(pick["batch_size"]), "scheduler": str(pick["scheduler"]),
        "seq_len": int(pick["seq_len"]), "epochs": int(pick["epochs"]),
        "learning_rate": float(f"{10 ** np.clip(rng.normal(-3.5, lr_spread), -5, -2):.6g}"),
        "weight_decay": float(f"{10 ** rng.uniform(-6, -0.7):.6g}"),
        "oversample_ratio": 1.0, "mixup_alpha": 0.0, "feature_noise": 0.0,
        "dropout": float(f"{rng.uniform(0, 0.5):.6g}"), "d_model": 64, "num_layers": 2, "num_heads": 4,
        "patience": 5, "seed": seed,
    }
    if loss == "focal":
        cfg["focal_gamma"] = float(f"{rng.uniform(0, 5):.6g}")
        cfg["focal_alpha"] = 0.25
    elif loss == "label_smoothing":
        cfg["label_smoothing"] = 0.1
    return {k: cfg[k] for k in sorted(cfg)}


def true_metric(cfg: dict[str, Any]) -> float:
    """The noise-free metric of a configuration under the simulation's known effects."""
    lr_pen = 0.02 * (np.log10(cfg["learning_rate"]) + 3.5) ** 2
    return (BASE + BACKBONE_EFFECT.get(cfg["backbone"], 0.0) + ENCODER_EFFECT.get(cfg["temporal_encoder"], 0.0)
            + POOLING_EFFECT.get(cfg["pooling"], 0.0) - lr_pen)


def synthetic_rows(n: int, seed: int = 0, noise: float = 0.01, agents: tuple[str, ...] = ("claude", "gemini"),
                   t0: float = 1.767e9, space=None) -> list[dict[str, Any]]:
    """`n` rows; with a `space`, discrete choices come from it and every config is canonicalised by
    check_idea (dimensions the simulation does not set take the space's defaults)."""
    from orze.space import check_idea

    rng = np.random.default_rng(seed)
    choices = _choices(space)
    backbones, encoders = list(BACKBONE_EFFECT), list(ENCODER_EFFECT)
    if space is not None:  # only the simulation's backbones/encoders the space allows
        for name, known in (("backbone", backbones), ("temporal_encoder", encoders)):
            dim = space.dimensions.get(name)
            allowed = [c for c in known if dim is None or c in (dim.choices or [])]
            known[:] = allowed or known
    rows = []
    for i in range(n):
        agent = agents[i % len(agents)]
        # Exploitation grows with time: the chance of taking the best backbone rises from 1/6.
        focus = 1.0 - 1.0 / (1.0 + i / max(n / 2, 1))
        if rng.random() < focus:
            backbone = "vjepa2"
        else:
            # The agents explore differently early on (specialisation) and alike later.
            prefer = backbones[:3] if agent == agents[0] else backbones[3:]
            backbone = str(rng.choice(prefer if rng.random() < 1 - focus else backbones))
        encoder = str(rng.choice(encoders))
        # ... and tunes the learning rate ever closer to its optimum (10^-3.5).
        cfg = _config(rng, backbone, encoder, int(rng.integers(0, 1000)), lr_spread=1.5 * (1 - focus) + 0.1,
                      choices=choices)
        if space is not None:
            check = check_idea(space, cfg)
            if not check.ok:
                raise ValueError(f"synthetic config does not fit the space: {check.errors}")
            cfg = check.config
        metric = float(np.clip(true_metric(cfg) + rng.normal(0, noise), 0, 1))
        finished = t0 + 60.0 * i
        rows.append({
            "id": f"syn-{i:06d}", "fingerprint": fingerprint(cfg), "status": "done", "metric_name": "val_ap",
            "metric": metric, "test_metric": float(np.clip(metric + rng.normal(0, 0.02), 0, 1)),
            "val_auc": None, "test_auc": None, "config": cfg, "idea_name": f"idea {i}", "agent": agent,
            "model": None, "source": "llm", "parent": None, "priority": "medium", "node": "n0", "slot": 0,
            "admitted_at": finished - 120, "started_at": finished - 60, "finished_at": finished,
            "duration_s": 60.0, "epochs_run": cfg.get("epochs"), "seed": cfg["seed"], "error": None, "attempts": 1,
        })
    return rows


def write_leaderboard(path, rows: list[dict[str, Any]]) -> None:
    """Write rows as a leaderboard.jsonl (one JSON object per line, ROW_KEYS schema)."""
    from orze.store.leaderboard import row_line

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in rows:
            f.write(row_line(r))


