"""Zipformer's building blocks (Yao et al. 2023; shared/reference/temporal-encoders.md §1): the
SwooshR/SwooshL activations, ScaledLinear, BiasNorm, Bypass, and the SimpleDownsample/SimpleUpsample
pair that joins stacks running at different frame rates. The layers and the encoder that use them
are in zipformer.py."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from orze.worker.encoders.common import zero_padded

# --- activations -------------------------------------------------------------------------------

def swoosh_r(x: torch.Tensor) -> torch.Tensor:
    """SwooshR(x) = softplus(x − 1) − 0.08x − 0.313261687, in fp32.

    F.softplus switches to the identity above 20, so unlike a naive log(1 + exp) it never overflows.
    """
    x32 = x.float()
    y = F.softplus(x32 - 1.0) - 0.08 * x32 - 0.313261687
    return y.to(x.dtype)


def swoosh_l(x: torch.Tensor) -> torch.Tensor:
    """SwooshL(x) = softplus(x − 4) − 0.08x − 0.035, in fp32."""
    x32 = x.float()
    y = F.softplus(x32 - 4.0) - 0.08 * x32 - 0.035
    return y.to(x.dtype)


class SwooshR(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swoosh_r(x)


class SwooshL(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swoosh_l(x)


# --- basic layers ------------------------------------------------------------------------------

def scaled_linear(in_features: int, out_features: int, initial_scale: float = 1.0,
                  bias: bool = True) -> nn.Linear:
    """nn.Linear with its default init, weight × s, bias ~ U(−0.1s, 0.1s): small-output projections."""
    lin = nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        lin.weight.mul_(initial_scale)
        if bias:
            lin.bias.uniform_(-0.1 * initial_scale, 0.1 * initial_scale)
    return lin


class BiasNorm(nn.Module):
    """y = x · exp(γ) / sqrt(mean_c((x − b)²) + 1e-8); b per channel, γ one scalar in [−1.5, 1.5]."""

    def __init__(self, channels: int, log_scale_limit: float = 1.5):
        super().__init__()
        self.bias = nn.Parameter(torch.randn(channels) * 1e-4)
        self.log_scale = nn.Parameter(torch.tensor(1.0))
        self.log_scale_limit = log_scale_limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        gamma = self.log_scale.float().clamp(-self.log_scale_limit, self.log_scale_limit)
        scale = torch.rsqrt((x32 - self.bias.float()).pow(2).mean(-1, keepdim=True) + 1e-8) * gamma.exp()
        return (x32 * scale).to(x.dtype)


class Bypass(nn.Module):
    """out = x₀ + (x − x₀) ⊙ clamp(c, min, max); c per channel, init 0.5; same clamp in train and eval."""

    def __init__(self, channels: int, min_scale: float = 0.2, max_scale: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), 0.5))
        self.min_scale = min_scale
        self.max_scale = max_scale

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        c = self.scale.clamp(self.min_scale, self.max_scale)
        return x0 + (x - x0) * c


class SimpleDownsample(nn.Module):
    """Weighted mean over windows of `ds` frames (weights softmax(bias), bias init 0 = plain mean).

    Returns (y, mask_ds) with y (B, ⌈T/ds⌉, C). Only real frames of a window take part (weights
    renormalised over them); a window with no real frame yields zeros and is marked padded.
    """

    def __init__(self, ds: int):
        super().__init__()
        self.ds = ds
        self.bias = nn.Parameter(torch.zeros(ds))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        ds = self.ds
        Td = -(-T // ds)
        pad = Td * ds - T
        x = zero_padded(x, mask)
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
            mask = F.pad(mask, (0, pad), value=False)
        w = self.bias.float().softmax(0)                                  # (ds,)
        wm = mask.reshape(B, Td, ds).float() * w                          # (B, Td, ds)
        denom = wm.sum(-1, keepdim=True)
        wm = wm / denom.clamp_min(1e-12)
        y = torch.einsum("bkw,bkwc->bkc", wm.to(x.dtype), x.reshape(B, Td, ds, C))
        return y, mask.reshape(B, Td, ds).any(-1)


class SimpleUpsample(nn.Module):
    """Repeat each frame `ds` times and crop to T."""

    def __init__(self, ds: int):
        super().__init__()
        self.ds = ds

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        return x.repeat_interleave(self.ds, dim=1)[:, :T]
