"""Registry of temporal encoders: the space's `temporal_encoder` choices map to builders here.

Contract for every encoder: `module(x, mask) -> y` with x (B, T, D_in) float, mask (B, T) bool
(True = a real frame, False = padding) and y (B, T, d_model). Padded positions of y are
unspecified; pooling masks them. Builders take keyword arguments input_dim, d_model, num_layers,
num_heads, dropout and must use every one of them (tests prove each changes the module).
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

Builder = Callable[..., nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    def deco(fn: Builder) -> Builder:
        _REGISTRY[name] = fn
        return fn
    return deco


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_encoder(name: str, *, input_dim: int, d_model: int, num_layers: int, num_heads: int,
                  dropout: float) -> nn.Module:
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"temporal_encoder: '{name}' has no implementation; available: {', '.join(available())}")
    return _REGISTRY[name](input_dim=input_dim, d_model=d_model, num_layers=num_layers,
                           num_heads=num_heads, dropout=dropout)


def describe(module: nn.Module) -> dict:
    """What was built, read back from the module's own attributes (not from the request)."""
    return {"name": module.kind, "class": type(module).__name__, "d_model": module.d_model,
            "num_layers": module.num_layers, "num_heads": module.num_heads,
            "dropout": module.dropout_p,
            "parameters": sum(p.numel() for p in module.parameters())}


def _load_builtin() -> None:
    # Imported lazily so that `import orze.worker.encoders` stays cheap; each module registers itself.
    from orze.worker.encoders import transformer  # noqa: F401
