"""Masked temporal pooling: (B, T, d) with a (B, T) validity mask → (B, d).

Each module carries `kind` (its space choice) so the effective configuration is read back from
the built object, never from the request.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class AttentionPool(nn.Module):
    """score_t = wᵀ tanh(W h_t); α = softmax over real frames (fp32); pooled = Σ α_t h_t."""

    kind = "attention"

    def __init__(self, d_model: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or d_model
        self.proj = nn.Linear(d_model, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def weights(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        s = self.score(torch.tanh(self.proj(h))).squeeze(-1).float()
        s = s.masked_fill(~mask, float("-inf"))
        # A fully padded row would give NaN; give it zero weights instead.
        any_real = mask.any(dim=1, keepdim=True)
        s = torch.where(any_real, s, torch.zeros_like(s))
        return torch.softmax(s, dim=1) * any_real

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = self.weights(h, mask)
        return torch.einsum("bt,btd->bd", a.to(h.dtype), h)


class MeanPool(nn.Module):
    kind = "mean"

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class LastPool(nn.Module):
    """The last real frame of each clip (not the last position, which may be padding)."""

    kind = "last"

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(mask, t, torch.zeros_like(t)).amax(dim=1)
        return h[torch.arange(h.shape[0], device=h.device), last]


class MaxPool(nn.Module):
    kind = "max"

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        filled = h.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        out = filled.amax(dim=1)
        return torch.where(torch.isfinite(out), out, torch.zeros_like(out))


POOLING = {cls.kind: cls for cls in (AttentionPool, MeanPool, LastPool, MaxPool)}


def build_pooling(kind: str, d_model: int) -> nn.Module:
    if kind not in POOLING:
        raise KeyError(f"pooling: '{kind}' is not implemented; available: {', '.join(POOLING)}")
    return AttentionPool(d_model) if kind == "attention" else POOLING[kind]()
