"""RetNet (Sun et al. 2023): multi-scale retention, bidirectional for clip classification.

From the reference spec (§2): Q, K·d_k^−0.5, V, G projections without bias (xavier gains 2^−2.5,
output 2^−1); xPos-style rotation of Q and K (interleaved pairs, θ = 10000^−linspace(0,1,d_k/2));
a per-head decay matrix D built as exp(masked exponent · ln γ) in fp32 and row-normalised by
√(Σ_m D); R = (Q̃K̃ᵀ)⊙D normalised by clamp(Σ|R|, 1, 5e4) (detached); per-head RMSNorm;
Y = W_O(SiLU(G) ⊙ O). Blocks are pre-norm: x + MSR(RMSNorm x), x + GLU(RMSNorm x).

Bidirectional: D[n,m] = γ^|n−m| (one symmetric decay instead of two causal passes; the rotation
still tells the two directions apart). `causal=True` gives the paper's decoder form.

Decays. The paper's γ_h = 1 − 2^(−5−h) ("standard") barely decay over a clip of ≤ 64 frames
(γ₃⁶³ ≈ 0.78, γ₀⁶³ ≈ 0.13), so every head is close to a plain average and the "multi-scale" part
is lost. The default here is "short": exponents spread over [2, 7], γ from 0.75 (a few frames)
to 0.992 (the whole clip), which keeps heads at genuinely different time scales for T ≤ 64.

Padding: padded key columns of D are zeroed before the row normalisation, so a padded frame has
no influence, and a clip's outputs do not depend on how much padding follows it.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from orze.worker.encoders import register
from orze.worker.encoders.common import StackReadBack, full_precision, zero_padded

DECAY_SCHEDULES = ("short", "standard")


def retention_decays(num_heads: int, schedule: str = "short") -> torch.Tensor:
    """γ per head (fp64 → fp32). 'standard': 1 − 2^(−5−h); 'short': 1 − 2^(−e), e = linspace(2, 7, H)."""
    h = torch.arange(num_heads, dtype=torch.float64)
    if schedule == "standard":
        exps = 5.0 + h
    elif schedule == "short":
        exps = (torch.linspace(2.0, 7.0, num_heads, dtype=torch.float64) if num_heads > 1
                else torch.tensor([5.0], dtype=torch.float64))
    else:
        raise ValueError(f"retnet decay schedule '{schedule}': allowed {', '.join(DECAY_SCHEDULES)}")
    return (1.0 - 2.0 ** (-exps)).float()


def decay_matrix(gammas: torch.Tensor, T: int, causal: bool, key_mask: torch.Tensor | None = None,
                 normalise: bool = True) -> torch.Tensor:
    """D (H, T, T), or (B, H, T, T) when key_mask (B, T) is given; fp32.

    D[n,m] = γ^(n−m) for m ≤ n (causal) or γ^|n−m| (bidirectional); 0 at masked keys. Built as
    exp(exponent · ln γ) with −inf where D is 0, never as a power of a tiny float.
    """
    n = torch.arange(T, device=gammas.device, dtype=torch.float32)
    diff = n[:, None] - n[None, :]
    expo = diff if causal else diff.abs()
    logd = expo[None] * torch.log(gammas.float())[:, None, None]           # (H, T, T)
    if causal:
        logd = logd.masked_fill(diff[None] < 0, float("-inf"))
    if key_mask is not None:
        logd = logd[None].masked_fill(~key_mask[:, None, None, :], float("-inf"))
    D = logd.exp()
    if normalise:
        D = D / D.sum(-1, keepdim=True).sqrt().clamp_min(1e-12)
    return D


def retention_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, D: torch.Tensor,
                       normalise: bool = True) -> torch.Tensor:
    """O = ((QKᵀ) ⊙ D) V for (B, H, T, d) inputs; with normalise, rows of R divided by clamp(Σ|R|, 1, 5e4)."""
    R = torch.matmul(q, k.transpose(-1, -2)) * D
    if normalise:
        R = R / R.abs().sum(-1, keepdim=True).detach().clamp(1.0, 5e4)
    return torch.matmul(R, v)


def retention_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gammas: torch.Tensor) -> torch.Tensor:
    """The causal, unnormalised recurrence s_n = γ s_{n−1} + k_nᵀ v_n, o_n = q_n s_n (a reference for tests)."""
    B, H, T, dk = q.shape
    s = q.new_zeros(B, H, dk, v.shape[-1])
    g = gammas.to(q.dtype)[None, :, None, None]
    out = []
    for t in range(T):
        s = g * s + k[:, :, t, :, None] * v[:, :, t, None, :]
        out.append(torch.einsum("bhd,bhde->bhe", q[:, :, t], s))
    return torch.stack(out, dim=2)


def rotate_every_two(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, …) → (−x1, x0, −x3, x2, …) on interleaved pairs."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


class MultiScaleRetention(nn.Module):
    def __init__(self, d: int, num_heads: int, causal: bool = False, decays: str = "short"):
        super().__init__()
        if d % num_heads:
            raise ValueError(f"retnet: d_model {d} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = d // num_heads
        self.causal = causal
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.g_proj = nn.Linear(d, d, bias=False)
        self.out_proj = nn.Linear(d, d, bias=False)
        for lin in (self.q_proj, self.k_proj, self.v_proj, self.g_proj):
            nn.init.xavier_uniform_(lin.weight, gain=2 ** -2.5)
        nn.init.xavier_uniform_(self.out_proj.weight, gain=2 ** -1)
        self.register_buffer("gammas", retention_decays(num_heads, decays), persistent=False)
        # Rotation on the first 2·⌊d_k/2⌋ channels (an odd head width leaves its last channel unrotated).
        n_pairs = self.head_dim // 2
        self.register_buffer("theta", 10000.0 ** -torch.linspace(0, 1, max(n_pairs, 1)), persistent=False)
        self.n_rot = 2 * n_pairs

    def _rotate(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_rot == 0:
            return x
        T = x.shape[-2]
        ang = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * self.theta[None, :]
        cos = ang.cos().repeat_interleave(2, -1).to(x.dtype)
        sin = ang.sin().repeat_interleave(2, -1).to(x.dtype)
        xr, rest = x[..., : self.n_rot], x[..., self.n_rot:]
        xr = xr * cos + rotate_every_two(xr) * sin
        return torch.cat([xr, rest], dim=-1) if rest.shape[-1] else xr

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        H, dk = self.num_heads, self.head_dim
        q = self.q_proj(x).reshape(B, T, H, dk).transpose(1, 2)
        k = (self.k_proj(x) * dk ** -0.5).reshape(B, T, H, dk).transpose(1, 2)
        v = self.v_proj(x).reshape(B, T, H, dk).transpose(1, 2)
        g = self.g_proj(x)
        q, k = self._rotate(q), self._rotate(k)
        with full_precision(x):
            D = decay_matrix(self.gammas, T, self.causal, key_mask=mask)
            o = retention_parallel(q.float(), k.float(), v.float(), D)
            o = F.rms_norm(o, (dk,), eps=1e-6)          # per-head, no affine
        o = o.transpose(1, 2).reshape(B, T, d).to(g.dtype)
        return self.out_proj(F.silu(g) * o)


class GLU(nn.Module):
    """fc2(gelu(fc1 x) ⊙ gate x), no biases."""

    def __init__(self, d: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden, bias=False)
        self.gate = nn.Linear(d, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, d, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(F.gelu(self.fc1(x)) * self.gate(x)))


class RetentionBlock(nn.Module):
    """x + MSR(RMSNorm x), then x + GLU(RMSNorm x); hidden width 2d as in the paper."""

    def __init__(self, d: int, num_heads: int, dropout: float, causal: bool = False, decays: str = "short"):
        super().__init__()
        self.norm1 = nn.RMSNorm(d, eps=1e-6)
        self.retention = MultiScaleRetention(d, num_heads, causal=causal, decays=decays)
        self.norm2 = nn.RMSNorm(d, eps=1e-6)
        self.ffn = GLU(d, 2 * d, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.retention(self.norm1(x), mask))
        return x + self.dropout(self.ffn(self.norm2(x)))


class RetNet(StackReadBack, nn.Module):
    kind = "retnet"

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float,
                 causal: bool = False, decays: str = "short"):
        super().__init__()
        self.in_proj = nn.Linear(input_dim, d_model)
        self.in_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(RetentionBlock(d_model, num_heads, dropout, causal, decays)
                                    for _ in range(num_layers))
        self.norm = nn.RMSNorm(d_model, eps=1e-6)

    @property
    def num_heads(self) -> int:
        return self.blocks[0].retention.num_heads

    def details(self) -> dict:
        msr = self.blocks[0].retention
        return {"decays": [round(g, 8) for g in msr.gammas.tolist()], "causal": msr.causal}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padded(self.in_dropout(self.in_proj(x)), mask)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)


@register("retnet")
def build(*, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float) -> nn.Module:
    return RetNet(input_dim, d_model, num_layers, num_heads, dropout)
