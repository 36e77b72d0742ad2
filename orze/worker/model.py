"""The classifier: backbone fusion → temporal encoder → pooling → linear head (1 or K logits).

`describe_model` reads the effective architecture back from the built modules (their classes and
attributes), which is what the daemon compares against the requested configuration.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from orze.worker.encoders import build_encoder
from orze.worker.encoders import describe as describe_encoder
from orze.worker.pooling import build_pooling


class ConcatFusion(nn.Module):
    """Concatenate aligned per-frame features of all backbones (a single backbone passes through)."""

    kind = "concat"

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = list(dims)
        self.out_dim = sum(dims)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)


class ProjectSumFusion(nn.Module):
    """Project each backbone to a common width and sum."""

    kind = "project_sum"

    def __init__(self, dims: list[int], width: int):
        super().__init__()
        self.dims = list(dims)
        self.proj = nn.ModuleList(nn.Linear(d, width) for d in dims)
        self.out_dim = width

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return sum(p(x) for p, x in zip(self.proj, xs))


class ClipClassifier(nn.Module):
    """`priors`: the training split's class frequencies (K of them). A binary task (`outputs` 1)
    has one logit, P(1) = σ(z); a multi-class one has K logits, P = softmax(z)."""

    def __init__(self, fusion: nn.Module, encoder: nn.Module, pooling: nn.Module, d_model: int,
                 dropout: float, priors: list[float], outputs: int = 1):
        super().__init__()
        self.fusion = fusion
        self.encoder = encoder
        self.pooling = pooling
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, outputs)
        p = [min(max(float(q), 1e-4), 1 - 1e-4) for q in priors]
        with torch.no_grad():   # start at the class prior
            if outputs == 1:    # logit bias −log((1 − π)/π)
                self.head.bias.fill_(-math.log((1 - p[-1]) / p[-1]))
            else:               # softmax(log π_c) = π_c
                self.head.bias.copy_(torch.tensor([math.log(q) for q in p]))

    def forward(self, xs: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.fusion(xs), mask)
        return self.head(self.head_dropout(self.pooling(h, mask))).squeeze(-1)


def build_model(config: dict, dims: list[int], priors: list[float], outputs: int = 1) -> ClipClassifier:
    d_model = config["d_model"]
    if len(dims) > 1 and config.get("fusion") == "project_sum":
        fusion: nn.Module = ProjectSumFusion(dims, d_model)
    else:
        fusion = ConcatFusion(dims)
    encoder = build_encoder(config["temporal_encoder"], input_dim=fusion.out_dim, d_model=d_model,
                            num_layers=config["num_layers"], num_heads=config["num_heads"],
                            dropout=config["dropout"])
    pooling = build_pooling(config["pooling"], d_model)
    return ClipClassifier(fusion, encoder, pooling, d_model, config["dropout"], priors, outputs)


def describe_model(model: ClipClassifier) -> dict:
    enc = describe_encoder(model.encoder)
    out = {
        "temporal_encoder": enc["name"],
        "d_model": enc["d_model"],
        "num_layers": enc["num_layers"],
        "num_heads": enc["num_heads"],
        "dropout": enc["dropout"],
        "pooling": model.pooling.kind,
        "head_in_features": model.head.in_features,
        "head_outputs": model.head.out_features,
        "head_dropout": model.head_dropout.p,
        "encoder_class": enc.get("class"),
        "encoder_details": enc.get("details"),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if len(model.fusion.dims) > 1:
        out["fusion"] = model.fusion.kind
    return out
