"""Policy implementations, one module each; `make_policy` builds the one an AgentSpec names.

LLM policies import their SDK and read their API key when built, so a missing key is reported
(MissingKeyError, naming the variable) before any cycle runs.
"""

from __future__ import annotations

from typing import Any

from orze.agents.spec import AgentSpec
from orze.layout import Layout


def make_policy(spec: AgentSpec, layout: Layout, **kw: Any):
    if spec.policy in ("random", "tpe"):
        from orze.agents.base import SubspacePolicy
        if spec.policy == "random":
            from orze.agents.policies.random_policy import RandomPolicy
            policy: Any = RandomPolicy(seed=spec.seed)
        else:
            from orze.agents.policies.tpe import TPEPolicy
            policy = TPEPolicy(seed=spec.seed,
                               n_startup_trials=int(spec.options.get("n_startup_trials", 10)))
        subspace = spec.options.get("subspace")
        return SubspacePolicy(policy, subspace) if subspace else policy
    if spec.policy == "claude":
        from orze.agents.policies.claude import ClaudePolicy
        return ClaudePolicy(spec, layout, **kw)
    if spec.policy == "gemini":
        from orze.agents.policies.gemini import GeminiPolicy
        return GeminiPolicy(spec, layout, **kw)
    raise ValueError(f"unknown policy {spec.policy!r}")
