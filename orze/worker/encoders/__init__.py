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
    """What was built, read back from the module's own structure (not from the request).

    Every registered encoder exposes `kind` and the properties d_model, num_layers, num_heads and
    dropout_p, each derived from its built submodules (an output norm's width, the length of its
    block list, an attention/retention/SSM module's head count, its nn.Dropout rates), so a wiring
    bug between config and module shows up as a difference. Also reported: the class, the input
    width (from the input projection), the parameter count, and `details`: architecture choices
    that are not space dimensions (Zipformer's stack plan, retention decays, SSM state size, xLSTM
    block kinds and directions), from the encoder's own `details()` where it has one.
    """
    missing = [a for a in ("kind", "d_model", "num_layers", "num_heads", "dropout_p") if not hasattr(module, a)]
    if missing:
        raise TypeError(f"{type(module).__name__} is not a registered encoder: it lacks {', '.join(missing)}")
    return {"name": module.kind, "class": type(module).__name__, "d_model": int(module.d_model),
            "num_layers": int(module.num_layers), "num_heads": int(module.num_heads),
            "dropout": float(module.dropout_p), "input_dim": _input_dim(module),
            "parameters": sum(p.numel() for p in module.parameters()),
            "details": module.details() if hasattr(module, "details") else {}}


def _input_dim(module: nn.Module) -> int:
    # The input projection is `in_proj` in the zoo and `proj` in the transformer baseline.
    proj = getattr(module, "in_proj", None) or getattr(module, "proj")
    return int(proj.in_features)


def _load_builtin() -> None:
    # Imported lazily so that `import orze.worker.encoders` stays cheap; each module registers itself.
    from orze.worker.encoders import bimamba, hybrid, retnet, transformer, xlstm, zipformer  # noqa: F401
