"""What the LLM policies share: prompt → provider call (retried, ledgered, transcribed) → parsed
ideas, and one repair round that continues the same conversation with the errors quoted.

A provider only has to implement `ChatClient.complete` (and name its `endpoint`, quoted in every
error); Claude, Gemini and OpenAI-compatible servers differ in nothing else.
The prompt template is read from prompts/research.md at every cycle, so edits apply at once.
Transcripts (runs/agents/<name>/transcripts/*.json) and the ledger never hold an API key: every
text is passed through `keys.redact` before it is written. Only the newest
`options.transcripts_keep` transcripts are kept.

The repair round asks only about what failed: the ideas that passed are kept (the loop submits
them whatever the repair reply says), and the model is asked for replacements of the others.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Protocol

from orze.agent_config import AgentSpec, LLMOptions
from orze.agents import ledger
from orze.agents.base import History
from orze.agents.context import load_template, render_prompt
from orze.agents.keys import redact
from orze.agents.parse import parse_reply
from orze.agents.retry import Backoff, ProviderError, Stopped, call_with_retry
from orze.layout import Layout
from orze.store.atomic import atomic_write_text

SYSTEM = ("You design machine-learning experiments. You answer with YAML ideas that use only the "
          "fields you are given, and you follow the campaign's rules.")


@dataclass
class Completion:
    text: str
    tokens_in: int
    tokens_out: int
    estimated: bool = False   # the server sent no usage block: tokens estimated from the text


class ChatClient(Protocol):
    endpoint: str

    def complete(self, system: str, messages: list[dict[str, str]], temperature: float,
                 max_tokens: int) -> Completion:
        ...


def repair_message(errors: list[str], n: int, kept: list[str] | None = None) -> str:
    """Ask for `n` replacement ideas: the kept ones are accepted already and must not be repeated."""
    quoted = "\n".join(f"- {e}" for e in errors)
    head = ""
    if kept:
        head = ("These ideas passed every check and are accepted as they are (do not repeat them): "
                + "; ".join(kept) + ".\n\n")
    return (f"{head}Your batch was checked and these problems were found:\n"
            f"{quoted}\n\n"
            f"Reply with {n} new idea(s) replacing the rejected ones, as one fenced YAML list. Use "
            "only the fields of the configuration space and the descriptive fields, and follow every "
            "rule, counting the accepted ideas as part of the batch.")


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
        opts: LLMOptions = spec.options  # type: ignore[assignment] - registered as an LLMOptions
        self.options = opts
        self.backoff = backoff or Backoff(attempts=opts.retries, base_s=opts.backoff_s,
                                          max_s=opts.backoff_max_s,
                                          max_retry_after_s=opts.max_retry_after_s)
        self.prompt_budget = opts.prompt_budget_tokens
        self.recent_window = opts.recent_window
        # The loop replaces these with its own (interruptible when the agent's lease is gone).
        self.sleep = time.sleep
        self.should_stop = lambda: False
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

    def repair(self, errors: list[str], n: int | None = None,
               kept: list[str] | None = None) -> list[dict[str, Any]]:
        """Replacements for the failed ideas (`n` of them; default the whole batch)."""
        self.messages.append({"role": "user", "content": repair_message(
            errors, self.n if n is None else n, kept)})
        return self._ask("repair")

    # ------------------------------------------------------------------ one provider call
    def _ask(self, step: str) -> list[dict[str, Any]]:
        started = time.monotonic()
        endpoint = getattr(self.client, "endpoint", None)
        try:
            reply, attempts = call_with_retry(
                lambda: self.client.complete(SYSTEM, self.messages, self.spec.temperature,
                                             self.spec.max_tokens), self.backoff,
                sleep=self.sleep, endpoint=endpoint, should_stop=self.should_stop)
        except ProviderError as e:
            ledger.record_call(self.layout, self.name, self.model, 0, 0, time.monotonic() - started,
                               ok=False, error=str(e), attempts=e.attempts, options=self.options,
                               endpoint=endpoint)
            self._transcript(step, None, str(e))
            raise
        except Stopped as e:
            if e.attempts:  # tries were made (and may be billed): they are ledgered too
                ledger.record_call(self.layout, self.name, self.model, 0, 0, time.monotonic() - started,
                                   ok=False, error=f"stopped: {e}", attempts=e.attempts,
                                   options=self.options, endpoint=endpoint)
            raise
        ledger.record_call(self.layout, self.name, self.model, reply.tokens_in, reply.tokens_out,
                           time.monotonic() - started, attempts=attempts, options=self.options,
                           endpoint=endpoint)
        self.messages.append({"role": "assistant", "content": reply.text})
        self._transcript(step, reply, None)
        parsed = parse_reply(reply.text)
        self.parse_errors = parsed.errors
        return parsed.ideas

    def _transcript(self, step: str, reply: Completion | None, error: str | None) -> None:
        keep = self.options.transcripts_keep
        if keep <= 0:
            return
        d = self.layout.agent_dir(self.name) / "transcripts"
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        record = {"agent": self.name, "model": self.model, "cycle": self.cycle, "step": step,
                  "t": time.time(), "system": SYSTEM, "messages": self.messages,
                  "tokens_in": reply.tokens_in if reply else None,
                  "tokens_out": reply.tokens_out if reply else None,
                  "tokens_estimated": bool(reply and reply.estimated), "error": error}
        text = redact(json.dumps(record, indent=1, ensure_ascii=False))
        atomic_write_text(d / f"{stamp}-c{self.cycle:04d}-{step}-{time.time_ns() % 10**9:09d}.json", text)
        prune(d, keep)


def prune(d, keep: int) -> int:
    """Delete all but the newest `keep` transcripts (names sort by time); returns how many went."""
    try:
        names = sorted(n for n in os.listdir(d) if n.endswith(".json"))
    except FileNotFoundError:
        return 0
    gone = 0
    for n in names[:max(0, len(names) - keep)]:
        try:
            os.unlink(os.path.join(d, n))
            gone += 1
        except FileNotFoundError:
            pass
    return gone
