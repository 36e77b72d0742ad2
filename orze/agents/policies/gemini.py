"""The `gemini` policy: generateContent through the official google-genai SDK.

Key from GEMINI_API_KEY or GOOGLE_API_KEY only. Base URL: the spec's `options.base_url` (passed as
`http_options.base_url`). The SDK does not retry (no retry_options); retries are ours.
"""

from __future__ import annotations

from orze.agent_config import AgentSpec
from orze.agents.keys import require_key
from orze.agents.policies.llm import Completion, LLMPolicy
from orze.layout import Layout

DEFAULT_MODEL = "gemini-2.5-flash"


class GeminiClient:
    def __init__(self, model: str, api_key: str, base_url: str | None = None, timeout_s: float = 120.0):
        from google import genai
        from google.genai import types

        self.model = model
        self.endpoint = base_url or "https://generativelanguage.googleapis.com"
        self._types = types
        opts = types.HttpOptions(timeout=int(timeout_s * 1000),
                                 **({"base_url": base_url} if base_url else {}))
        self._client = genai.Client(api_key=api_key, http_options=opts)

    def complete(self, system: str, messages: list[dict[str, str]], temperature: float,
                 max_tokens: int) -> Completion:
        t = self._types
        contents = [t.Content(role="model" if m["role"] == "assistant" else "user",
                              parts=[t.Part(text=m["content"])]) for m in messages]
        cfg = t.GenerateContentConfig(system_instruction=system, temperature=temperature,
                                      max_output_tokens=max_tokens)
        resp = self._client.models.generate_content(model=self.model, contents=contents, config=cfg)
        text = ""
        for cand in resp.candidates or []:
            for part in (cand.content.parts if cand.content and cand.content.parts else []):
                text += part.text or ""
            break
        usage = resp.usage_metadata
        return Completion(text, int(getattr(usage, "prompt_token_count", 0) or 0),
                          int(getattr(usage, "candidates_token_count", 0) or 0))


class GeminiPolicy(LLMPolicy):
    default_model = DEFAULT_MODEL

    def __init__(self, spec: AgentSpec, layout: Layout, **kw):
        key = require_key("gemini")
        model = spec.model or DEFAULT_MODEL
        client = GeminiClient(model, key, spec.options.base_url, spec.options.timeout_s)
        super().__init__(spec, layout, client, **kw)
