"""xLSTM (Beck et al. 2024): mLSTM blocks with the stabilised parallel cell, alternating direction.

From the reference spec (§4). mLSTM layer (up-projection 2, conv 4, qkv block 4):
up_proj → x_m, z; c = SiLU(causal conv(x_m)); q, k from c and v from x_m through block-diagonal
linears; input/forget gate pre-activations ĩ, f̃ = Linear(concat(q, k, v) → heads); the stabilised
parallel cell; per-head LayerNorm; y = W_down((h̃ + skip ⊙ c) ⊙ SiLU z); block x + layer(LN x).
Init: forget gate weight 0, bias linspace(3, 6) over heads; input gate weight 0, bias N(0, 0.1).

Direction alternates block to block (Vision-LSTM style): even blocks read the clip forwards, odd
blocks read it flipped, so with ≥ 2 blocks every frame sees both sides.

Mapping: num_layers = blocks, num_heads = mLSTM heads (head width 2·d_model/num_heads), dropout
after each block's down-projection and at the input. The qkv block size is 4 where the inner width
(2·d_model) allows it and 2 otherwise (odd d_model).

Padding: at padded frames the forget gate is 1 (log f = 0) and the input gate −∞, so they neither
write to nor decay the memory, and the conv sees zeros there. Outputs at real frames do not depend
on padded frames in either direction.

sLSTM: `SLSTMCell` implements the scalar-memory cell with exponential gating and its stabiliser as
a recurrence (a loop over time; it has no parallel form). `XLSTM(..., slstm_every=k)` makes every
k-th block an sLSTM block; the registered builder uses mLSTM only (the fast, parallel choice).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from orze.worker.encoders import register
from orze.worker.encoders.common import DepthwiseConv, StackReadBack, flip_time, full_precision, zero_padded

CONV_KERNEL = 4
PROJ_FACTOR = 2


# --- the mLSTM cell ----------------------------------------------------------------------------

def mlstm_parallel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, igate: torch.Tensor,
                   fgate: torch.Tensor, valid: torch.Tensor | None = None, eps: float = 1e-6) -> torch.Tensor:
    """Stabilised parallel mLSTM: q, k, v (B, H, T, d); gate pre-activations (B, H, T); valid (B, T).

    log f = logsigmoid(f̃); F[t,s] = Σ_{r=s+1..t} log f_r for s ≤ t else −∞; L = F + ĩ_s; m_t = max_s L;
    C = (q_t·k_s/√d) exp(L − m_t); h_t = Σ_s C v_s / (max(|Σ_s C|, exp(−m_t)) + eps). Computed in fp32.
    """
    with full_precision(q):
        q, k, v = q.float(), k.float(), v.float()
        logf = F.logsigmoid(fgate.float())
        ig = igate.float()
        if valid is not None:
            vm = valid[:, None, :]
            logf = torch.where(vm, logf, torch.zeros((), device=q.device))
            ig = torch.where(vm, ig, torch.full((), float("-inf"), device=q.device))
        T = q.shape[-2]
        cs = torch.cumsum(logf, dim=-1)                                   # cs[t] = Σ_{r ≤ t} log f_r
        Fm = cs[..., :, None] - cs[..., None, :]                          # Σ_{r=s+1..t}
        causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        L = Fm.masked_fill(~causal, float("-inf")) + ig[..., None, :]
        m = L.amax(-1, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros((), device=q.device))   # rows with no key
        C = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1]) * torch.exp(L - m)
        n = torch.maximum(C.sum(-1, keepdim=True).abs(), torch.exp(-m))
        return torch.matmul(C, v) / (n + eps)


def mlstm_recurrent(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, igate: torch.Tensor,
                    fgate: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The stabilised recurrence (m₀ = ĩ₀), a loop over time: the reference for the parallel form.

    m_t = max(log f_t + m_{t−1}, ĩ_t); C_t = f′C_{t−1} + i′ v_t k_tᵀ/√d; n_t = f′n_{t−1} + i′ k_t/√d;
    h_t = C_t q_t / (max(|n_tᵀq_t|, exp(−m_t)) + eps), i′ = exp(ĩ_t − m_t), f′ = exp(log f_t + m_{t−1} − m_t).
    """
    B, H, T, d = q.shape
    logf = F.logsigmoid(fgate)
    Cst = q.new_zeros(B, H, d, v.shape[-1])
    nst = q.new_zeros(B, H, d)
    m_prev = None
    out = []
    for t in range(T):
        kt = k[:, :, t] / math.sqrt(d)
        if m_prev is None:
            m = igate[:, :, t]
            fp = torch.zeros_like(m)
        else:
            m = torch.maximum(logf[:, :, t] + m_prev, igate[:, :, t])
            fp = torch.exp(logf[:, :, t] + m_prev - m)
        ip = torch.exp(igate[:, :, t] - m)
        Cst = fp[..., None, None] * Cst + ip[..., None, None] * kt[..., :, None] * v[:, :, t, None, :]
        nst = fp[..., None] * nst + ip[..., None] * kt
        qt = q[:, :, t]
        num = torch.einsum("bhd,bhde->bhe", qt, Cst)
        den = torch.maximum((nst * qt).sum(-1).abs(), torch.exp(-m))
        out.append(num / (den[..., None] + eps))
        m_prev = m
    return torch.stack(out, dim=2)


# --- mLSTM layer and block ---------------------------------------------------------------------

class BlockDiagonalLinear(nn.Module):
    """y = x W with W block-diagonal (blocks of `block` × `block`), no bias."""

    def __init__(self, dim: int, block: int):
        super().__init__()
        if dim % block:
            raise ValueError(f"xlstm: width {dim} is not divisible by the qkv block size {block}")
        self.block = block
        self.weight = nn.Parameter(torch.randn(dim // block, block, block) * math.sqrt(2 / (5 * block)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(*x.shape[:-1], self.weight.shape[0], self.block)
        return torch.einsum("...gi,gio->...go", xs, self.weight.to(x.dtype)).reshape(x.shape)


class MultiHeadLayerNorm(nn.Module):
    """LayerNorm over each head's channels separately, one learnable scale per channel."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.num_heads, self.head_dim, self.eps = num_heads, head_dim, eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (B, H, T, dh) → (B, T, H·dh)."""
        B, H, T, dh = h.shape
        y = F.layer_norm(h.float(), (dh,), eps=self.eps).transpose(1, 2).reshape(B, T, H * dh)
        return y * self.weight


class MLSTMLayer(nn.Module):
    def __init__(self, d: int, num_heads: int):
        super().__init__()
        inner = PROJ_FACTOR * d
        if inner % num_heads:
            raise ValueError(f"xlstm: inner width {inner} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = inner // num_heads
        block = 4 if inner % 4 == 0 else 2
        self.up_proj = nn.Linear(d, 2 * inner)
        self.conv = DepthwiseConv(inner, CONV_KERNEL, causal=True)
        self.q_proj = BlockDiagonalLinear(inner, block)
        self.k_proj = BlockDiagonalLinear(inner, block)
        self.v_proj = BlockDiagonalLinear(inner, block)
        self.igate = nn.Linear(3 * inner, num_heads)
        self.fgate = nn.Linear(3 * inner, num_heads)
        nn.init.zeros_(self.fgate.weight)
        with torch.no_grad():
            self.fgate.bias.copy_(torch.linspace(3.0, 6.0, num_heads))
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, std=0.1)
        self.out_norm = MultiHeadLayerNorm(num_heads, self.head_dim)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down_proj = nn.Linear(inner, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H, dh = self.num_heads, self.head_dim
        xm, z = self.up_proj(x).chunk(2, dim=-1)
        xm = zero_padded(xm, mask)
        c = F.silu(self.conv(xm, mask))
        q, k, v = self.q_proj(c), self.k_proj(c), self.v_proj(xm)
        qkv = torch.cat([q, k, v], dim=-1)
        ig = self.igate(qkv).transpose(1, 2)                                   # (B, H, T)
        fg = self.fgate(qkv).transpose(1, 2)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(B, T, H, dh).transpose(1, 2)

        h = mlstm_parallel(heads(q), heads(k), heads(v), ig, fg, valid=mask)
        h = self.out_norm(h).to(c.dtype) + self.skip * c
        return self.down_proj(h * F.silu(z))


class MLSTMBlock(nn.Module):
    """x + dropout(mLSTM(LN x)), reading the clip forwards or flipped."""

    def __init__(self, d: int, num_heads: int, dropout: float, reverse: bool):
        super().__init__()
        self.reverse = reverse
        self.norm = nn.LayerNorm(d)
        self.layer = MLSTMLayer(d, num_heads)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.reverse:
            return flip_time(self.forward_direction(flip_time(x), flip_time(mask)))
        return self.forward_direction(x, mask)

    def forward_direction(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.layer(self.norm(x), mask))


# --- sLSTM (recurrent) -------------------------------------------------------------------------

class SLSTMCell(nn.Module):
    """Scalar-memory LSTM with exponential gating, heads with block-diagonal recurrent weights.

    m_t = max(logσ(f̃) + m_{t−1}, ĩ); i′ = exp(ĩ − m_t); f′ = exp(logσ(f̃) + m_{t−1} − m_t);
    c = f′c + i′ tanh(z̃); n = f′n + i′; h = σ(õ) c / n. Since c/n is a weighted mean of tanh values,
    |h| < 1. At padded frames (mask False) the state is carried over unchanged.
    """

    def __init__(self, d: int, num_heads: int):
        super().__init__()
        if d % num_heads:
            raise ValueError(f"slstm: width {d} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, d // num_heads
        self.w = nn.Linear(d, 4 * d)                     # z, i, f, o pre-activations from the input
        self.r = nn.Parameter(torch.randn(num_heads, self.head_dim, 4 * self.head_dim) / math.sqrt(self.head_dim))
        with torch.no_grad():
            self.w.bias[2 * d: 3 * d].copy_(torch.linspace(3.0, 6.0, d))   # forget gates start open

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, d = x.shape
        H, dh = self.num_heads, self.head_dim
        with full_precision(x):
            wx = self.w(x.float())
            r = self.r.float()
            c = x.new_zeros(B, d, dtype=torch.float32)
            n = torch.zeros_like(c)
            m = torch.zeros_like(c)
            h = torch.zeros_like(c)
            out = []
            for t in range(T):
                rec = torch.einsum("bhi,hio->bho", h.reshape(B, H, dh), r)        # (B, H, 4·dh)
                rec = rec.reshape(B, H, 4, dh).transpose(1, 2).reshape(B, 4 * d)
                zt, it, ft, ot = (wx[:, t] + rec).chunk(4, dim=-1)
                logf = F.logsigmoid(ft)
                m_new = torch.maximum(logf + m, it)
                ip = torch.exp(it - m_new)
                fp = torch.exp(logf + m - m_new)
                c_new = fp * c + ip * torch.tanh(zt)
                n_new = fp * n + ip
                h_new = torch.sigmoid(ot) * c_new / n_new
                if mask is not None:
                    keep = mask[:, t, None]
                    c_new, n_new, m_new, h_new = (torch.where(keep, a, b) for a, b in
                                                  ((c_new, c), (n_new, n), (m_new, m), (h_new, h)))
                c, n, m, h = c_new, n_new, m_new, h_new
                out.append(h)
        return torch.stack(out, dim=1).to(x.dtype)


class SLSTMBlock(nn.Module):
    """x + dropout(W(sLSTM(LN x))), direction as for mLSTM blocks."""

    def __init__(self, d: int, num_heads: int, dropout: float, reverse: bool):
        super().__init__()
        self.reverse = reverse
        self.norm = nn.LayerNorm(d)
        self.cell = SLSTMCell(d, num_heads)
        self.out_proj = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.reverse:
            x, mask = flip_time(x), flip_time(mask)
        y = x + self.dropout(self.out_proj(self.cell(self.norm(x), mask)))
        return flip_time(y) if self.reverse else y


# --- the encoder -------------------------------------------------------------------------------

class XLSTM(StackReadBack, nn.Module):
    kind = "xlstm"

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float,
                 slstm_every: int = 0):
        super().__init__()
        self.in_proj = nn.Linear(input_dim, d_model)
        self.in_dropout = nn.Dropout(dropout)
        blocks = []
        for i in range(num_layers):
            reverse = i % 2 == 1
            if slstm_every and i % slstm_every == slstm_every - 1:
                blocks.append(SLSTMBlock(d_model, num_heads, dropout, reverse))
            else:
                blocks.append(MLSTMBlock(d_model, num_heads, dropout, reverse))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d_model)

    @property
    def num_heads(self) -> int:
        b = self.blocks[0]
        return b.layer.num_heads if isinstance(b, MLSTMBlock) else b.cell.num_heads

    def details(self) -> dict:
        return {"blocks": ["slstm" if isinstance(b, SLSTMBlock) else "mlstm" for b in self.blocks],
                "directions": ["backward" if b.reverse else "forward" for b in self.blocks]}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padded(self.in_dropout(self.in_proj(x)), mask)
        for block in self.blocks:
            h = block(h, mask)
        return self.norm(h)


@register("xlstm")
def build(*, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float) -> nn.Module:
    return XLSTM(input_dim, d_model, num_layers, num_heads, dropout)
