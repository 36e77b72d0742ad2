"""Hybrid: retention and bidirectional-Mamba layers alternating, reusing retnet.py and bimamba.py blocks.

One hybrid layer is a RetentionBlock (global mixing with multi-scale decays) followed by a MambaBlock
(selective, input-dependent state), so `num_layers` = N gives 2N blocks alternating
retention, Mamba, retention, Mamba, … — every depth, including 1, is genuinely hybrid. `num_heads`
goes to both: retention heads and the SSM's B/C groups. Padding is handled by each block.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from orze.worker.encoders import register
from orze.worker.encoders.bimamba import D_STATE, MambaBlock, mixer_details
from orze.worker.encoders.common import StackReadBack, zero_padded
from orze.worker.encoders.retnet import RetentionBlock


class HybridLayer(nn.Module):
    def __init__(self, d: int, num_heads: int, dropout: float, d_state: int = D_STATE):
        super().__init__()
        self.retention = RetentionBlock(d, num_heads, dropout)
        self.mamba = MambaBlock(d, num_heads, dropout, d_state=d_state)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.mamba(self.retention(x, mask), mask)


class Hybrid(StackReadBack, nn.Module):
    _stack = "layers"
    kind = "hybrid"

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float,
                 d_state: int = D_STATE):
        super().__init__()
        self.in_proj = nn.Linear(input_dim, d_model)
        self.in_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(HybridLayer(d_model, num_heads, dropout, d_state) for _ in range(num_layers))
        self.norm = nn.RMSNorm(d_model, eps=1e-6)

    @property
    def num_heads(self) -> int:
        heads = {self.layers[0].retention.retention.num_heads, self.layers[0].mamba.mixer.num_heads}
        if len(heads) != 1:
            raise ValueError(f"hybrid: retention and Mamba blocks disagree on heads: {sorted(heads)}")
        return heads.pop()

    def details(self) -> dict:
        first = self.layers[0]
        return {"block_order": ["retention", "mamba"] * len(self.layers),
                "decays": [round(g, 8) for g in first.retention.retention.gammas.tolist()],
                **mixer_details(first.mamba.mixer)}

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = zero_padded(self.in_dropout(self.in_proj(x)), mask)
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h)


@register("hybrid")
def build(*, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float) -> nn.Module:
    return Hybrid(input_dim, d_model, num_layers, num_heads, dropout)
