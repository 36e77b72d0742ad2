"""Transformer baseline: input projection, learned positions, pre-norm nn.TransformerEncoder."""

from __future__ import annotations

import torch
import torch.nn as nn

from orze.worker.encoders import register

MAX_LEN = 512


class TransformerEncoder(nn.Module):
    kind = "transformer"

    def __init__(self, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float):
        super().__init__()
        self.proj = nn.Linear(input_dim, d_model)
        self.pos = nn.Parameter(torch.zeros(1, MAX_LEN, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, num_heads, dim_feedforward=4 * d_model,
                                           dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    # Read back from the built layers, so a wiring bug shows up as a difference.
    @property
    def d_model(self) -> int:
        return self.proj.out_features

    @property
    def num_layers(self) -> int:
        return len(self.encoder.layers)

    @property
    def num_heads(self) -> int:
        return self.encoder.layers[0].self_attn.num_heads

    @property
    def dropout_p(self) -> float:
        return self.encoder.layers[0].dropout.p

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(x) + self.pos[:, : x.shape[1]]
        h = self.encoder(h, src_key_padding_mask=~mask)
        return self.norm(h)


@register("transformer")
def build(*, input_dim: int, d_model: int, num_layers: int, num_heads: int, dropout: float) -> nn.Module:
    return TransformerEncoder(input_dim, d_model, num_layers, num_heads, dropout)
