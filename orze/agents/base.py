"""The policy interface: history in, ideas out.

A policy sees a `History` (plain data read from the research directory) and returns raw idea
mappings. Everything it returns goes through the same validation as a human's submission, so a
policy can never bypass the space's rules. A policy that can revise a batch (the LLM policies)
also implements `repair(feedback)`: given the quoted errors of its last batch it returns a
complete revised batch; the loop allows one such round per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orze.space import Space


@dataclass
class History:
    space: Space
    rows: list[dict[str, Any]] = field(default_factory=list)       # leaderboard rows, file order
    pending: list[dict[str, Any]] = field(default_factory=list)    # queued/running canonical configs
    failures: list[dict[str, Any]] = field(default_factory=list)   # recent failed/misconfigured rows
    rules: dict[str, Any] = field(default_factory=dict)            # prompts/rules.md front matter
    rules_text: str = ""                                           # rules rendered for the prompt
    metric_name: str = "val_ap"                                    # task.metric's history key
    task: str = "binary"                                           # task.type

    @property
    def direction(self) -> str:
        """'higher' or 'lower' (is better), from the metric registry (orze.metrics)."""
        from orze.store.leaderboard import metric_sign
        return "higher" if metric_sign(self.metric_name) > 0 else "lower"

    def ranked(self) -> list[dict[str, Any]]:
        """Finished runs best first on the task's metric, in its direction."""
        from orze.store.leaderboard import ranked
        return ranked(self.rows, self.metric_name)

    def leader(self) -> dict[str, Any] | None:
        """The best finished run's row (validation metric only), or None before the first."""
        best = self.ranked()
        return best[0] if best else None


def restrict_space(space: Space, subspace: dict[str, Any]) -> Space:
    """The space an offline policy samples from when its agent declares `options.subspace`:
    each named dimension narrowed to one value, a list of choices, or a {low, high} range, all
    inside what the real space allows. Ideas are still validated against the real space."""
    from orze.space.validate import coerce_value

    dims = dict(space.dimensions)
    for name, spec in (subspace or {}).items():
        if name not in dims:
            raise ValueError(f"options.subspace: unknown dimension '{name}'; allowed: {', '.join(dims)}")
        dim = dims[name]
        if isinstance(spec, dict):
            low, high = spec.get("low", dim.low), spec.get("high", dim.high)
            for v in (low, high):
                ok, why = coerce_value(dim, v)
                if not ok:
                    raise ValueError(f"options.subspace.{name}: {why}")
            dims[name] = dim.model_copy(update={"low": float(low), "high": float(high)})
            continue
        values = spec if isinstance(spec, list) else [spec]
        for v in values:
            ok, why = coerce_value(dim, v)
            if not ok:
                raise ValueError(f"options.subspace.{name}: {why}")
        dims[name] = dim.model_copy(update={"choices": list(values), "low": None, "high": None,
                                            "log": False})
    return space.model_copy(update={"dimensions": dims})


class SubspacePolicy:
    """Wraps an offline policy so that it samples only inside `subspace`."""

    def __init__(self, inner: Any, subspace: dict[str, Any]):
        self.inner, self.subspace = inner, subspace
        self.name = inner.name
        self.source = getattr(inner, "source", inner.name)

    def propose(self, history: History, n: int) -> list[dict[str, Any]]:
        from dataclasses import replace

        return self.inner.propose(replace(history, space=restrict_space(history.space, self.subspace)), n)
