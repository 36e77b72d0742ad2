"""Zipformer (Yao et al. 2023, arXiv 2310.11230) for short clips, in plain PyTorch.

Implements, from the reference spec (shared/reference/temporal-encoders.md §1): BiasNorm, SwooshR/L,
ScaledLinear, Bypass, compact relative positional encoding, relative-position attention weights
computed once per layer and shared by the non-linear attention and both self-attentions, the
convolution module, and stacks at several frame rates joined by SimpleDownsample/SimpleUpsample.

How the registry's arguments map (documented in docs/encoders.md):
- num_layers = the total number of Zipformer layers, spread over min(num_layers, 5) stacks whose
  downsampling factors follow STACK_SCHEDULES (1, 2, 4, 2, 1 at most: a factor of 8 would collapse a
  16-frame clip to 2 frames). One layer per stack; a sixth layer goes to the first stack.
- d_model = the width of full-rate stacks; a stack at factor 2 is 5/4 as wide and at factor 4 3/2 as
  wide (the paper widens its middle stacks too). The output combines channels across stacks as the
  paper does and is projected to d_model when that combination is wider.
- num_heads = attention heads in every stack; per-head query/value widths scale with the stack width
  (the ASR recipe's fixed 32/12 would dwarf a 64-wide model).
- dropout = the feed-forward modules' dropout and the input dropout.

Padding: keys at padded frames are masked (−1000 before softmax), padded frames are zeroed before
every convolution, and the downsampler averages only real frames of a window (which, for a window
cut short at the clip's end, is what the paper's "repeat the last frame" padding computes too).
Training-only aids of the reference (Balancer, Whiten, skip rates, feature masks) are forward
identities and are omitted.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from orze.worker.encoders import register
from orze.worker.encoders.common import DepthwiseConv, config_dropout_p, full_precision, zero_padded
from orze.worker.encoders.zipformer_blocks import (
    BiasNorm,
    Bypass,
    SimpleDownsample,
    SimpleUpsample,
    SwooshL,
    SwooshR,
    scaled_linear,
)

# Downsampling factor of each stack, by number of stacks (T ≤ 64: never below ~8 frames at T = 32).
STACK_SCHEDULES: dict[int, tuple[int, ...]] = {
    1: (1,),
    2: (1, 2),
    3: (1, 2, 1),
    4: (1, 2, 4, 2),
    5: (1, 2, 4, 2, 1),
}
WIDTH_FACTOR = {1: 1.0, 2: 1.25, 4: 1.5}
KERNEL_SIZE = {1: 15, 2: 7, 4: 5}   # ≈ half the frames a 32-frame clip has at that rate; odd
POS_DIM = 48
POS_HEAD_DIM = 4
ATTN_MASK_VALUE = -1000.0


# --- relative positions and attention weights --------------------------------------------------

def compact_rel_pos(T: int, pos_dim: int, device=None) -> torch.Tensor:
    """Compact relative positional encoding for offsets −(T−1)..T−1 → (2T−1, pos_dim), fp32.

    Offsets are log-compressed beyond ~√pos_dim, mapped through atan to an angle θ, and encoded as
    cos/sin of (k+1)θ; the last channel is a constant 1 (acts as a per-head bias)."""
    x = torch.arange(-(T - 1), T, device=device, dtype=torch.float32)
    L = math.sqrt(pos_dim)
    xc = L * x.sign() * (torch.log(x.abs() + L) - math.log(L))
    theta = torch.atan(xc * 2 * math.pi / pos_dim)
    k = torch.arange(1, pos_dim // 2 + 1, device=device, dtype=torch.float32)
    ang = theta[:, None] * k[None, :]
    pe = torch.stack([ang.cos(), ang.sin()], dim=-1).reshape(2 * T - 1, -1)[:, :pos_dim]
    pe[:, -1] = 1.0
    return pe


class RelPositionAttentionWeights(nn.Module):
    """Attention weights A (B, H, T, T), computed once per layer and shared by its sub-modules.

    S[h,i,j] = q_i·k_j + p_i·P_h(j − i) (no 1/√dq: the in-projection's init scale replaces it);
    padded keys get −1000; softmax in fp32, so every row sums to 1.
    """

    def __init__(self, d: int, num_heads: int, query_head_dim: int, pos_head_dim: int = POS_HEAD_DIM,
                 pos_dim: int = POS_DIM):
        super().__init__()
        self.num_heads = num_heads
        self.query_head_dim = query_head_dim
        self.pos_head_dim = pos_head_dim
        self.pos_dim = pos_dim
        self.in_proj = scaled_linear(d, num_heads * (2 * query_head_dim + pos_head_dim),
                                     initial_scale=query_head_dim ** -0.25)
        self.linear_pos = scaled_linear(pos_dim, num_heads * pos_head_dim, initial_scale=0.05, bias=False)
        self.pos_dropout = nn.Dropout(0.15)
        self.pos_dropout.fixed = True   # architecture constant, not the config's dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H, dq, dp = self.num_heads, self.query_head_dim, self.pos_head_dim
        qkp = self.in_proj(x)
        q, k, p = qkp.split([H * dq, H * dq, H * dp], dim=-1)
        q = q.reshape(B, T, H, dq).transpose(1, 2)
        k = k.reshape(B, T, H, dq).transpose(1, 2)
        p = p.reshape(B, T, H, dp).transpose(1, 2)                          # (B, H, T, dp)
        pe = self.pos_dropout(compact_rel_pos(T, self.pos_dim, x.device)).to(x.dtype)
        P = self.linear_pos(pe).reshape(2 * T - 1, H, dp).permute(1, 2, 0)  # (H, dp, 2T−1)
        pos_all = torch.matmul(p, P.unsqueeze(0))                          # (B, H, T, 2T−1)
        # Offset j − i lives at column j − i + T − 1.
        i = torch.arange(T, device=x.device)
        idx = (i[None, :] - i[:, None] + T - 1).expand(B, H, T, T)
        scores = torch.matmul(q, k.transpose(-1, -2)) + pos_all.gather(-1, idx)
        with full_precision(x):
            scores = scores.float().masked_fill(~mask[:, None, None, :], ATTN_MASK_VALUE)
            return scores.softmax(-1)


# --- sub-modules -------------------------------------------------------------------------------

class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.act = SwooshL()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = scaled_linear(hidden, d, initial_scale=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(x))))


class NonlinAttention(nn.Module):
    """s, x, y = split(Linear(d, 3h)); x ← A₀ (x ⊙ tanh s); out = ScaledLinear(x ⊙ y), h = 3d/4."""

    def __init__(self, d: int):
        super().__init__()
        self.hidden = max(1, 3 * d // 4)
        self.in_proj = nn.Linear(d, 3 * self.hidden)
        self.out_proj = scaled_linear(self.hidden, d, initial_scale=0.05)

    def forward(self, x: torch.Tensor, attn0: torch.Tensor) -> torch.Tensor:
        s, v, y = self.in_proj(x).chunk(3, dim=-1)
        v = v * torch.tanh(s)
        v = torch.matmul(attn0.to(v.dtype), v)
        return self.out_proj(v * y)


class SelfAttention(nn.Module):
    """Values per head, mixed by the layer's shared attention weights."""

    def __init__(self, d: int, num_heads: int, value_head_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.value_head_dim = value_head_dim
        self.in_proj = nn.Linear(d, num_heads * value_head_dim)
        self.out_proj = scaled_linear(num_heads * value_head_dim, d, initial_scale=0.05)

    def forward(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        v = self.in_proj(x).reshape(B, T, self.num_heads, self.value_head_dim).transpose(1, 2)
        o = torch.matmul(attn.to(v.dtype), v).transpose(1, 2).reshape(B, T, -1)
        return self.out_proj(o)


class ConvolutionModule(nn.Module):
    """Linear(d, 2d) → x ⊙ σ(s) → zero padding → depthwise Conv1d (odd k) → SwooshR → ScaledLinear."""

    def __init__(self, d: int, kernel_size: int):
        super().__init__()
        self.in_proj = nn.Linear(d, 2 * d)
        self.depthwise = DepthwiseConv(d, kernel_size, causal=False)
        self.act = SwooshR()
        self.out_proj = scaled_linear(d, d, initial_scale=0.05)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        v, s = self.in_proj(x).chunk(2, dim=-1)
        v = self.depthwise(v * torch.sigmoid(s), mask)
        return self.out_proj(self.act(v))


class ZipformerLayer(nn.Module):
    """One Zipformer layer, in the paper's order (spec §1 'Layer order')."""

    def __init__(self, d: int, ff_dim: int, num_heads: int, query_head_dim: int, value_head_dim: int,
                 kernel_size: int, dropout: float):
        super().__init__()
        self.attn_weights = RelPositionAttentionWeights(d, num_heads, query_head_dim)
        self.ffn1 = FeedForward(d, max(1, 3 * ff_dim // 4), dropout)
        self.nonlin_attn = NonlinAttention(d)
        self.self_attn1 = SelfAttention(d, num_heads, value_head_dim)
        self.conv1 = ConvolutionModule(d, kernel_size)
        self.ffn2 = FeedForward(d, ff_dim, dropout)
        self.bypass_mid = Bypass(d)
        self.self_attn2 = SelfAttention(d, num_heads, value_head_dim)
        self.conv2 = ConvolutionModule(d, kernel_size)
        self.ffn3 = FeedForward(d, max(1, 5 * ff_dim // 4), dropout)
        self.norm = BiasNorm(d)
        self.bypass = Bypass(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x0 = x
        attn = self.attn_weights(x, mask)
        x = x + self.ffn1(x)
        x = x + self.nonlin_attn(x, attn[:, 0])
        x = x + self.self_attn1(x, attn)
        x = x + self.conv1(x, mask)
        x = x + self.ffn2(x)
        x = self.bypass_mid(x0, x)
        x = x + self.self_attn2(x, attn)
        x = x + self.conv2(x, mask)
        x = x + self.ffn3(x)
        x = self.norm(x)
        return self.bypass(x0, x)


class ZipformerStack(nn.Module):
    """Layers at one frame rate: downsample by `ds` → layers → upsample, crop → Bypass with the input."""

    def __init__(self, d: int, num_layers: int, ds: int, num_heads: int, dropout: float):
        super().__init__()
        self.d = d
        self.ds = ds
        query_head_dim = max(4, min(32, d // (2 * num_heads)))
        value_head_dim = max(4, min(12, d // (4 * num_heads)))
        self.layers = nn.ModuleList(
            ZipformerLayer(d, 3 * d, num_heads, query_head_dim, value_head_dim, KERNEL_SIZE[ds], dropout)
            for _ in range(num_layers))
        if ds > 1:
            self.downsample = SimpleDownsample(ds)
            self.upsample = SimpleUpsample(ds)
            self.out_bypass = Bypass(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x_in, T, m = x, x.shape[1], mask
        if self.ds > 1:
            x, m = self.downsample(x, mask)
        for layer in self.layers:
            x = layer(x, m)
        if self.ds > 1:
            x = self.out_bypass(x_in, self.upsample(x, T))
        return x


def stack_plan(num_layers: int) -> list[tuple[int, int]]:
    """(downsampling factor, layers) per stack for a total of `num_layers` layers."""
    if num_layers < 1:
        raise ValueError(f"zipformer: num_layers must be ≥ 1, got {num_layers}")
    n_stacks = min(num_layers, max(STACK_SCHEDULES))
    schedule = STACK_SCHEDULES[n_stacks]
    layers = [1] * n_stacks
    layers[0] += num_layers - n_stacks
    return list(zip(schedule, layers))


def _to_width(x: torch.Tensor, d: int) -> torch.Tensor:
    """Truncate or zero-pad channels to d (between stacks of different widths)."""
    c = x.shape[-1]
    if c == d:
        return x
    return x[..., :d] if c > d else F.pad(x, (0, d - c))


class Zipformer(nn.Module):
    kind = "zipformer"

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float):
        super().__init__()
        self.in_proj = nn.Linear(input_dim, d_model)
        self.in_dropout = nn.Dropout(dropout)
        plan = stack_plan(num_layers)
        self.dims = [int(math.ceil(d_model * WIDTH_FACTOR[ds])) for ds, _ in plan]
        self.stacks = nn.ModuleList(ZipformerStack(d, n, ds, num_heads, dropout)
                                    for d, (ds, n) in zip(self.dims, plan))
        full = max(self.dims)
        self.out_proj = nn.Linear(full, d_model) if full != d_model else nn.Identity()

    @property
    def d_model(self) -> int:
        return self.in_proj.out_features if isinstance(self.out_proj, nn.Identity) else self.out_proj.out_features

    @property
    def num_layers(self) -> int:
        return sum(len(s.layers) for s in self.stacks)

    @property
    def num_heads(self) -> int:
        return self.stacks[0].layers[0].attn_weights.num_heads

    @property
    def dropout_p(self) -> float:
        return config_dropout_p(self)

    def details(self) -> dict:
        return {"stack_downsampling": [s.ds for s in self.stacks],
                "stack_layers": [len(s.layers) for s in self.stacks],
                "stack_widths": [s.d for s in self.stacks]}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = zero_padded(self.in_dropout(self.in_proj(x)), mask)
        outputs = []
        for d, stack in zip(self.dims, self.stacks):
            x = stack(_to_width(x, d), mask)
            outputs.append(x)
        # All channels of the last stack, then, walking back, the extra channels of any earlier stack
        # wider than what has been collected so far (the paper's full-dimension output).
        parts, cur = [outputs[-1]], self.dims[-1]
        for d, out in zip(reversed(self.dims[:-1]), reversed(outputs[:-1])):
            if d > cur:
                parts.append(out[..., cur:d])
                cur = d
        return self.out_proj(torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0])


@register("zipformer")
def build(*, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float) -> nn.Module:
    return Zipformer(input_dim, d_model, num_layers, num_heads, dropout)
