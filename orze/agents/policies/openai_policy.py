"""The `openai` policy: Chat Completions through the official `openai` SDK, for OpenAI itself and
for the OpenAI-compatible servers research groups run on their own machines (vLLM, Ollama,
llama.cpp's server, LiteLLM, …).

- Endpoint: `options.base_url` (e.g. http://127.0.0.1:8000/v1 for vLLM, http://127.0.0.1:11434/v1
  for Ollama), else the SDK's OPENAI_BASE_URL handling, else api.openai.com.
- Key: the variable `options.api_key_env` names (OPENAI_API_KEY by default); `api_key_env: null`
  for a local server that wants none (the SDK then sends a placeholder).
- `options.stream: true` streams the reply (server-sent events) and asks for the usage block in the
  last chunk (`stream_options.include_usage`); a server that sends none is ledgered with the
  tokens estimated from the text (characters / 3.5), marked in the transcript.
- Reply limit: `max_completion_tokens` for api.openai.com (its newer models refuse `max_tokens`),
  `max_tokens` for every other server (what vLLM, Ollama and llama.cpp read).
- Cost: the price table per model (orze/agents/ledger.py); zero for a base_url on this machine or
  a private network, unless the agent sets prices.
The SDK's retries are off (`max_retries=0`): retries are ours (orze.agents.retry).
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from orze.agent_config import AgentSpec
from orze.agents.context import estimate_tokens
from orze.agents.keys import require_key, track
from orze.agents.policies.llm import Completion, LLMPolicy
from orze.layout import Layout

DEFAULT_MODEL = "gpt-4.1-mini"
OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "not-needed"  # the SDK refuses an empty key; local servers ignore it


class OpenAIChatClient:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout_s: float = 120.0,
                 stream: bool = False):
        import openai

        self.model = model
        self.stream = stream
        self.endpoint = base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        self._official = (urlparse(self.endpoint).hostname or "").endswith("openai.com")
        self._client = openai.OpenAI(api_key=api_key, base_url=self.endpoint, max_retries=0,
                                     timeout=timeout_s)

    def complete(self, system: str, messages: list[dict[str, str]], temperature: float,
                 max_tokens: int) -> Completion:
        limit = {"max_completion_tokens" if self._official else "max_tokens": max_tokens}
        msgs = [{"role": "system", "content": system}, *messages]
        if not self.stream:
            resp = self._client.chat.completions.create(model=self.model, messages=msgs,
                                                        temperature=temperature, **limit)
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            usage = resp.usage
            if usage is None:
                return Completion(text, _estimate(msgs), estimate_tokens(text), estimated=True)
            return Completion(text, int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))
        parts: list[str] = []
        usage = None
        stream = self._client.chat.completions.create(
            model=self.model, messages=msgs, temperature=temperature, stream=True,
            stream_options={"include_usage": True}, **limit)
        with stream:
            for chunk in stream:
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
        text = "".join(parts)
        if usage is None:
            return Completion(text, _estimate(msgs), estimate_tokens(text), estimated=True)
        return Completion(text, int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0))


def _estimate(msgs: list[dict[str, str]]) -> int:
    return estimate_tokens("".join(m["content"] for m in msgs))


class OpenAIPolicy(LLMPolicy):
    default_model = DEFAULT_MODEL

    def __init__(self, spec: AgentSpec, layout: Layout, **kw):
        opts = spec.options
        if opts.api_key_env:
            key = require_key("openai", (opts.api_key_env,))
        else:
            key = NO_KEY
            if os.environ.get("OPENAI_API_KEY"):
                track("OPENAI_API_KEY")
        client = OpenAIChatClient(spec.model or DEFAULT_MODEL, key, opts.base_url, opts.timeout_s,
                                  stream=opts.stream)
        super().__init__(spec, layout, client, **kw)
