"""The `claude` policy: the Anthropic Messages API through the official SDK.

Key from ANTHROPIC_API_KEY only. Base URL: the spec's `options.base_url`, else the SDK's own
ANTHROPIC_BASE_URL handling. The SDK's retries are off (`max_retries=0`): retries are ours
(orze.agents.retry) so that each attempt is counted and bounded in one place.
"""

from __future__ import annotations

import inspect
import os

from orze.agent_config import AgentSpec
from orze.agents.keys import require_key
from orze.agents.policies.llm import Completion, LLMPolicy
from orze.layout import Layout

DEFAULT_MODEL = "claude-sonnet-4-6"


class AnthropicClient:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout_s: float = 120.0):
        import anthropic

        self.model = model
        self.endpoint = (base_url or os.environ.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com")
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                           timeout=timeout_s)
        # Recent SDKs dropped `temperature` from messages.create (current models fix sampling);
        # older ones accept it. Send it only where the installed SDK takes it.
        self._takes_temperature = "temperature" in inspect.signature(
            self._client.messages.create).parameters

    def complete(self, system: str, messages: list[dict[str, str]], temperature: float,
                 max_tokens: int) -> Completion:
        extra = {"temperature": temperature} if self._takes_temperature else {}
        resp = self._client.messages.create(model=self.model, system=system, messages=messages,
                                            max_tokens=max_tokens, **extra)
        text = "".join(getattr(b, "text", "") for b in resp.content if getattr(b, "type", "") == "text")
        usage = resp.usage
        return Completion(text, int(usage.input_tokens or 0), int(usage.output_tokens or 0))


class ClaudePolicy(LLMPolicy):
    default_model = DEFAULT_MODEL

    def __init__(self, spec: AgentSpec, layout: Layout, **kw):
        key = require_key("claude")
        model = spec.model or DEFAULT_MODEL
        client = AnthropicClient(model, key, spec.options.base_url, spec.options.timeout_s)
        super().__init__(spec, layout, client, **kw)
