"""Bounded self-healing: a config-level fix for a failure class, where one exists (pure).

- oom: halve the batch (to the largest allowed batch size below the current one).
- nan_loss: divide the learning rate by 3 (within its range) and clip gradients harder.
Every patched config is validated against the space by the caller; no code is ever executed.
"""

from __future__ import annotations

from typing import Any

from orze.space import Space


def heal_patch(space: Space, config: dict[str, Any], failure_class: str) -> tuple[dict[str, Any], str] | None:
    dims = space.dimensions
    if failure_class == "oom" and "batch_size" in config and "batch_size" in dims:
        d = dims["batch_size"]
        if d.choices:
            smaller = [c for c in d.choices if c < config["batch_size"]]
            if smaller:
                new = max(c for c in smaller if c <= config["batch_size"] // 2) if any(
                    c <= config["batch_size"] // 2 for c in smaller) else max(smaller)
                return {"batch_size": new}, f"out of memory: batch_size {config['batch_size']} → {new}"
        elif d.low is not None and config["batch_size"] // 2 >= d.low:
            new = config["batch_size"] // 2
            return {"batch_size": new}, f"out of memory: batch_size {config['batch_size']} → {new}"
        return None
    if failure_class == "nan_loss" and "learning_rate" in config and "learning_rate" in dims:
        d = dims["learning_rate"]
        new_lr = config["learning_rate"] / 3
        if d.low is not None and new_lr < d.low:
            return None
        patch: dict[str, Any] = {"learning_rate": new_lr}
        if "grad_clip" in config:
            clip = config["grad_clip"]
            patch["grad_clip"] = 0.5 if clip == 0 or clip > 0.5 else clip / 2
        return patch, f"non-finite loss: learning_rate {config['learning_rate']:g} → {new_lr:g}, " \
                      f"grad_clip → {patch.get('grad_clip')}"
    return None
