"""The training knobs, each one object that owns its effective value: the epoch sampler
(oversampling), augmentation (mixup, feature noise), early stopping, the optimiser and the
learning-rate schedule. orze.worker.train builds them from the run's configuration and reads the
effective values back from them (effective_config.json).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# --- knobs, each one object that owns its effective value ---------------------------------

@dataclass
class EpochSampler:
    """Batches of training indices. Binary: positives drawn `oversample_ratio` times as often.
    Multi-class (`classes` > 0): a row of class c drawn with weight min(ratio, n_max / n_c), so
    each rare class up to `ratio` times as often as its natural rate, never beyond balance."""

    n: int
    labels: torch.Tensor
    batch_size: int
    oversample_ratio: float
    generator: torch.Generator
    classes: int = 0          # K for a multi-class task; 0: binary

    def class_weights(self) -> torch.Tensor:
        counts = torch.bincount(self.labels.cpu().long(), minlength=self.classes).double()
        ratio = torch.full_like(counts, float(self.oversample_ratio))
        return torch.where(counts > 0, torch.minimum(ratio, counts.max() / counts.clamp(min=1)), 0.0)

    def batches(self) -> list[torch.Tensor]:
        if self.oversample_ratio == 1.0:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            w = self.class_weights()[self.labels.cpu().long()] if self.classes else \
                torch.where(self.labels.cpu() > 0.5, self.oversample_ratio, 1.0).double()
            order = torch.multinomial(w, self.n, replacement=True, generator=self.generator)
        return list(order.split(self.batch_size))


@dataclass
class Augment:
    """Training-time mixup (Beta(α, α), off at α = 0) and Gaussian feature noise (off at 0).
    Targets are (N,) for a binary task and one-hot (N, K) rows for a multi-class one: mixup
    blends either the same way."""

    mixup_alpha: float
    feature_noise: float
    generator: torch.Generator

    def __call__(self, xs: list[torch.Tensor], mask: torch.Tensor, y: torch.Tensor):
        if self.feature_noise > 0:
            m = mask.unsqueeze(-1).to(xs[0].dtype)
            xs = [x + self.feature_noise * m *
                  torch.randn(x.shape, generator=self.generator).to(x.device) for x in xs]
        if self.mixup_alpha > 0 and y.shape[0] > 1:
            lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,),
                        generator=self.generator))).beta(self.mixup_alpha, self.mixup_alpha))
            perm = torch.randperm(y.shape[0], generator=self.generator).to(y.device)
            xs = [lam * x + (1 - lam) * x[perm] for x in xs]
            y = lam * y + (1 - lam) * y[perm]
            mask = mask | mask[perm]
        return xs, mask, y


@dataclass
class EarlyStopper:
    """Stop after `patience` epochs without a better validation metric (in the metric's
    direction: `sign` +1 maximises, -1 minimises); remembers the best. NaN never improves."""

    patience: int
    sign: float = 1.0
    best: float = -math.inf           # sign · the best value
    best_epoch: int = 0
    stale: int = 0

    def update(self, epoch: int, value: float) -> tuple[bool, bool]:
        """(improved, stop) after an epoch's validation value."""
        value = self.sign * value
        if value > self.best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            return True, False
        self.stale += 1
        return False, self.stale >= self.patience


SCHEDULERS = {
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "linear": torch.optim.lr_scheduler.LinearLR,
    "step": torch.optim.lr_scheduler.StepLR,
}


def build_optimiser(model: torch.nn.Module, config: dict) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # Biases, norms, 1-D gains and SSM parameters marked _no_weight_decay (A_log, D) are
        # not decayed (standard AdamW practice; the Mamba spec's init assumes it).
        (no_decay if p.ndim < 2 or getattr(p, "_no_weight_decay", False) else decay).append(p)
    return torch.optim.AdamW([
        {"params": decay, "weight_decay": config["weight_decay"], "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ], lr=config["learning_rate"])


def build_scheduler(optimiser: torch.optim.Optimizer, name: str, total_steps: int):
    total_steps = max(1, total_steps)
    if name == "cosine":
        return SCHEDULERS[name](optimiser, T_max=total_steps)
    if name == "linear":
        return SCHEDULERS[name](optimiser, start_factor=1.0, end_factor=0.01, total_iters=total_steps)
    if name == "step":
        return SCHEDULERS[name](optimiser, step_size=max(1, total_steps // 3), gamma=0.3)
    raise KeyError(f"scheduler: '{name}' is not implemented; available: {', '.join(SCHEDULERS)}")
