"""The `random` policy: uniform over choices, log-uniform over log ranges, uniform otherwise.

Samples only dimensions marked `search: true`, and only those that apply in the sampled region,
so every idea it writes validates. Deterministic for a given seed and call sequence.
"""

from __future__ import annotations

import math
import random
from typing import Any

from orze.agents.base import History
from orze.space import Space
from orze.space.validate import applies, check_idea


def sample_config(space: Space, rng: random.Random) -> dict[str, Any]:
    idea: dict[str, Any] = {}
    ordered = sorted(space.dimensions.values(), key=lambda d: bool(d.when))
    for dim in ordered:
        if not dim.search or not applies(dim, idea)[0]:
            continue
        if dim.choices is not None:
            value: Any = rng.choice(dim.choices)
        elif dim.type == "int":
            value = rng.randint(int(dim.low), int(dim.high))
        elif dim.log:
            value = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
        else:
            value = rng.uniform(dim.low, dim.high)
        idea[dim.name] = value
    return idea


class RandomPolicy:
    name = "random"
    source = "random"

    def __init__(self, seed: int = 0, max_tries: int = 100):
        self.rng = random.Random(seed)
        self.max_tries = max_tries

    def propose(self, history: History, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            for _ in range(self.max_tries):
                idea = sample_config(history.space, self.rng)
                if check_idea(history.space, idea).ok:  # e.g. d_model divisible by num_heads
                    out.append(idea)
                    break
        return out


def build(spec, layout, **kw):
    """The registered builder (orze.agent_config): a seeded RandomPolicy, inside options.subspace."""
    from orze.agents.base import SubspacePolicy

    policy = RandomPolicy(seed=spec.seed)
    return SubspacePolicy(policy, spec.options.subspace) if spec.options.subspace else policy
