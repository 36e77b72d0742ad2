"""What the LLM policies share: prompt → provider call (retried, ledgered, transcribed) → parsed
ideas, and one repair round that continues the same conversation with the errors quoted.

A provider only has to implement `ChatClient.complete`; Claude and Gemini differ in nothing else.
The prompt template is read from prompts/research.md at every cycle, so edits apply at once.
Transcripts (runs/agents/<name>/transcripts/*.json) and the ledger never hold an API key: every
text is passed through `keys.redact` before it is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from orze.agents import ledger
from orze.agents.base import History
from orze.agents.context import load_template, render_prompt
from orze.agents.keys import redact
from orze.agents.parse import parse_reply
from orze.agents.retry import Backoff, ProviderError, call_with_retry
from orze.agents.spec import AgentSpec
from orze.layout import Layout
from orze.store.atomic import atomic_write_text

SYSTEM = ("You design machine-learning experiments. You answer with YAML ideas that use only the "
          "fields you are given, and you follow the campaign's rules.")


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int


class ChatClient(Protocol):
    def complete(self, system: str, messages: list[dict[str, str]], temperature: float,
                 max_tokens: int) -> Completion:
        ...


def repair_message(errors: list[str], n: int) -> str:
    quoted = "\n".join(f"- {e}" for e in errors)
    return ("Your batch was checked and these problems were found:\n"
            f"{quoted}\n\n"
            f"Reply with the complete corrected batch of {n} ideas as one fenced YAML list. Use only "
            "the fields of the configuration space and the descriptive fields; keep the ideas that "
            "had no problem, fix or replace the others, and follow every rule.")


class LLMPolicy:
    source = "llm"
    default_model = ""

    def __init__(self, spec: AgentSpec, layout: Layout, client: ChatClient,
                 backoff: Backoff | None = None):
        self.spec = spec
        self.layout = layout
        self.client = client
        self.name = spec.name
        self.model = spec.model or self.default_model
        opts = spec.options
        self.backoff = backoff or Backoff(attempts=int(opts.get("retries", 4)),
                                          base_s=float(opts.get("backoff_s", 2.0)),
                                          max_s=float(opts.get("backoff_max_s", 60.0)))
        self.prompt_budget = int(opts.get("prompt_budget_tokens", 6000))
        self.recent_window = int(opts.get("recent_window", 50))
        self.messages: list[dict[str, str]] = []
        self.parse_errors: list[str] = []
        self.n = 0
        self.cycle = 0

    # ------------------------------------------------------------------ the two entry points
    def propose(self, history: History, n: int) -> list[dict[str, Any]]:
        self.cycle += 1
        self.n = n
        prompt = render_prompt(load_template(self.layout), history, agent=self.name, n=n,
                               budget_tokens=self.prompt_budget, recent_window=self.recent_window,
                               template_name=str(self.layout.research_prompt))
        self.messages = [{"role": "user", "content": prompt}]
        return self._ask("propose")

    def repair(self, errors: list[str]) -> list[dict[str, Any]]:
        self.messages.append({"role": "user", "content": repair_message(errors, self.n)})
        return self._ask("repair")

    # ------------------------------------------------------------------ one provider call
    def _ask(self, step: str) -> list[dict[str, Any]]:
        started = time.monotonic()
        try:
            reply, attempts = call_with_retry(
                lambda: self.client.complete(SYSTEM, self.messages, self.spec.temperature,
                                             self.spec.max_tokens), self.backoff)
        except ProviderError as e:
            ledger.record_call(self.layout, self.name, self.model, 0, 0, time.monotonic() - started,
                               ok=False, error=str(e), attempts=e.attempts, options=self.spec.options)
            self._transcript(step, None, str(e))
            raise
        ledger.record_call(self.layout, self.name, self.model, reply.tokens_in, reply.tokens_out,
                           time.monotonic() - started, attempts=attempts, options=self.spec.options)
        self.messages.append({"role": "assistant", "content": reply.text})
        self._transcript(step, reply, None)
        parsed = parse_reply(reply.text)
        self.parse_errors = parsed.errors
        return parsed.ideas

    def _transcript(self, step: str, reply: Completion | None, error: str | None) -> None:
        d = self.layout.agent_dir(self.name) / "transcripts"
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        record = {"agent": self.name, "model": self.model, "cycle": self.cycle, "step": step,
                  "t": time.time(), "system": SYSTEM, "messages": self.messages,
                  "tokens_in": reply.tokens_in if reply else None,
                  "tokens_out": reply.tokens_out if reply else None, "error": error}
        text = redact(json.dumps(record, indent=1, ensure_ascii=False))
        atomic_write_text(d / f"{stamp}-c{self.cycle:04d}-{step}-{time.time_ns() % 10**9:09d}.json", text)
