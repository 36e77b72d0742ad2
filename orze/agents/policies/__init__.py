"""Policy implementations, one module each; `make_policy` builds the one an AgentSpec names.

Which callable builds a policy is part of its registration in `orze.agent_config` (`@register(name,
impl=...)`), next to its typed options; the implementation module is imported only here, when an
agent of that policy runs. LLM policies import their SDK and read their API key when built, so a
missing key is reported (MissingKeyError, naming the variable) before any cycle runs.
"""

from __future__ import annotations

import importlib
from typing import Any

from orze.agent_config import AgentSpec, implementation
from orze.layout import Layout


def make_policy(spec: AgentSpec, layout: Layout, **kw: Any):
    module, _, attr = implementation(spec.policy).partition(":")
    build = getattr(importlib.import_module(module), attr)
    return build(spec, layout, **kw)
