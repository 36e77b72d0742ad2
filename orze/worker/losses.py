"""Classification losses over logits, each with `kind` and its parameters as attributes.

Computed in fp32. Targets may be soft (mixup), so every loss accepts y ∈ [0, 1]. Two forms, told
apart by the logits' shape (docs/tasks.md):
- binary: logits (N,), targets (N,) = P(class 1);
- multi-class: logits (N, K), targets (N, K) one-hot rows (or mixed ones). `bce` is then the
  softmax cross-entropy, `label_smoothing` the cross-entropy against targets pulled towards 1/K,
  and `focal` the one-vs-rest sigmoid focal loss of each class (Lin et al.'s own multi-class
  form), summed over classes and averaged over rows.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def per_row(loss: torch.Tensor) -> torch.Tensor:
    """Elementwise losses → one per row: a multi-class (N, K) loss sums its classes."""
    return loss.sum(-1) if loss.ndim == 2 else loss


class FocalLoss(nn.Module):
    """Lin et al. 2017: CE·(1 − p_t)^γ, weighted by α·y + (1 − α)(1 − y) when α ≥ 0."""

    kind = "focal"

    def __init__(self, gamma: float = 2.0, alpha: float = 0.25):
        super().__init__()
        self.gamma = float(gamma)
        self.alpha = float(alpha)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = logits.float(), y.float()
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p = torch.sigmoid(x)
        p_t = p * y + (1 - p) * (1 - y)
        loss = ce * (1 - p_t).clamp(min=0) ** self.gamma
        if self.alpha >= 0:
            loss = loss * (self.alpha * y + (1 - self.alpha) * (1 - y))
        return per_row(loss).mean()

    def describe(self) -> dict:
        return {"loss": self.kind, "focal_gamma": self.gamma, "focal_alpha": self.alpha}


class BCELoss(nn.Module):
    kind = "bce"

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if logits.ndim == 2:
            return F.cross_entropy(logits.float(), y.float())
        return F.binary_cross_entropy_with_logits(logits.float(), y.float())

    def describe(self) -> dict:
        return {"loss": self.kind}


class LabelSmoothingLoss(nn.Module):
    """Cross-entropy against targets pulled towards uniform: y·(1 − ε) + ε/K (binary: K = 2, BCE)."""

    kind = "label_smoothing"

    def __init__(self, smoothing: float = 0.1):
        super().__init__()
        self.smoothing = float(smoothing)

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        share = 0.5 if logits.ndim == 1 else 1.0 / logits.shape[-1]
        target = y.float() * (1 - self.smoothing) + share * self.smoothing
        if logits.ndim == 2:
            return F.cross_entropy(logits.float(), target)
        return F.binary_cross_entropy_with_logits(logits.float(), target)

    def describe(self) -> dict:
        return {"loss": self.kind, "label_smoothing": self.smoothing}


def build_loss(config: dict) -> nn.Module:
    kind = config["loss"]
    if kind == "focal":
        return FocalLoss(config["focal_gamma"], config["focal_alpha"])
    if kind == "bce":
        return BCELoss()
    if kind == "label_smoothing":
        return LabelSmoothingLoss(config["label_smoothing"])
    raise KeyError(f"loss: '{kind}' is not implemented; available: focal, bce, label_smoothing")
