"""Every knob the space declares changes what runs, and what ran is read back and verified.

Each case trains twice on tiny synthetic features, differing in one knob only, and asserts that
the training trajectory differs and that the effective configuration reports the knob's value.
"""

import numpy as np
import pytest

from tests.worker.helpers import run_config

BASE = {"epochs": 2, "d_model": 16, "num_heads": 2, "num_layers": 1, "batch_size": 16, "seq_len": 12,
        "patience": 5}

KNOBS = [
    ("pooling", "attention", "mean"), ("pooling", "last", "max"),
    ("loss", "focal", "bce"), ("loss", "bce", "label_smoothing"),
    ("focal_gamma", 0.0, 3.0), ("focal_alpha", 0.25, 0.75), ("label_smoothing", 0.05, 0.25),
    ("learning_rate", 3e-4, 3e-3), ("weight_decay", 1e-4, 0.1), ("grad_clip", 0.0, 0.01),
    ("scheduler", "cosine", "step"), ("scheduler", "cosine", "linear"),
    ("batch_size", 16, 32), ("seq_len", 12, 8), ("epochs", 1, 2),
    ("dropout", 0.0, 0.3), ("oversample_ratio", 1.0, 3.0), ("mixup_alpha", 0.0, 0.4),
    ("feature_noise", 0.0, 0.3), ("d_model", 16, 32), ("num_layers", 1, 2), ("num_heads", 1, 4),
    ("backbone", "vjepa2", "dinov2_b"), ("seed", 0, 1),
    ("fusion", "concat", "project_sum"),
]
CONDITIONAL = {"focal_gamma": {"loss": "focal"}, "focal_alpha": {"loss": "focal"},
               "label_smoothing": {"loss": "label_smoothing"},
               "fusion": {"backbone": ["vjepa2", "dinov2_b"]}}


def trajectory(metrics):
    return np.array([h["train_loss"] for h in metrics["history"]] + [metrics["val_ap"]])


@pytest.mark.parametrize("knob, a, b", KNOBS, ids=[f"{k}:{a}->{b}" for k, a, b in KNOBS])
def test_knob_changes_training_and_is_verified(tiny_dir, knob, a, b):
    base = {**BASE, **CONDITIONAL.get(knob, {})}
    ca, ma, ea, fa = run_config(tiny_dir, {**base, knob: a})
    cb, mb, eb, fb = run_config(tiny_dir, {**base, knob: b})
    assert fa == [] and fb == [], (fa, fb)
    assert ea[knob] == ca[knob] and eb[knob] == cb[knob]
    ta, tb = trajectory(ma), trajectory(mb)
    assert ta.shape != tb.shape or not np.allclose(ta, tb), f"{knob} did not change training"


def test_same_config_and_seed_give_same_result(tiny_dir):
    _, m1, _, _ = run_config(tiny_dir, {**BASE, "mixup_alpha": 0.3, "feature_noise": 0.1, "oversample_ratio": 2.0})
    _, m2, _, _ = run_config(tiny_dir, {**BASE, "mixup_alpha": 0.3, "feature_noise": 0.1, "oversample_ratio": 2.0})
    assert np.array_equal(trajectory(m1), trajectory(m2))
    assert m1["test_ap"] == m2["test_ap"] and m1["seed"] == 0


def test_metrics_contract(tiny_dir):
    _, m, e, _ = run_config(tiny_dir, BASE)
    for key in ("metric", "val_ap", "val_roc_auc", "test_ap", "test_roc_auc", "task", "epochs_run", "history",
                "seconds", "startup_s", "peak_memory_mb", "seed", "selection"):
        assert key in m
    assert 0.0 <= m["val_ap"] <= 1.0 and 0.0 <= m["test_roc_auc"] <= 1.0
    assert e["split_sizes"]["train"] + e["split_sizes"]["val"] + e["split_sizes"]["test"] == 96
    assert e["sequence"]["train"] == e["sequence"]["eval"]["val"] == e["sequence"]["eval"]["test"]


def test_every_encoder_family_trains_and_is_verified(tiny_dir):
    """temporal_encoder is wired: each family builds its own class and trains differently."""
    trajectories = {}
    for enc in ("zipformer", "retnet", "bimamba", "hybrid", "xlstm", "transformer"):
        c, m, e, findings = run_config(tiny_dir, {**BASE, "epochs": 1, "temporal_encoder": enc})
        assert findings == [], (enc, findings)
        assert e["temporal_encoder"] == enc and e["encoder_class"]
        trajectories[enc] = trajectory(m)
    values = list(trajectories.values())
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not np.allclose(values[i], values[j])
