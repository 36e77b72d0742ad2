"""Per-agent accounting: runs/agents/<name>/ledger.jsonl, one JSON object per line.

Two kinds of record, both appended by the agent's own process (one writer per file, one write()
per record, so a line is never interleaved):
    {"kind": "call", "t", "agent", "model", "tokens_in", "tokens_out", "latency_s", "cost_usd",
     "ok", "error", "attempts"}
    {"kind": "cycle", "t", "agent", "cycle", "proposed", "submitted", "rejected", "repaired",
     "status"}

Cost comes from a price table per model (USD per million input/output tokens; a spec may
override it through `options.price_in_per_mtok` / `options.price_out_per_mtok`; an `openai`
agent whose base_url is on this machine or a private network costs nothing unless overridden). `summarise` gives
per-agent totals for `orze status`; `totals` is what the budget check reads.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orze.layout import Layout
from orze.store.atomic import append_line

LEDGER = "ledger.jsonl"

# USD per million tokens (input, output), list prices at the time of writing. Prefix match on the
# model name, longest prefix wins, so a new dated or minor version inherits its family's price.
# Override per agent with options.price_in_per_mtok / price_out_per_mtok when a price changes.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-2025": (15.0, 75.0),
    "claude-opus-": (5.0, 25.0),
    "claude-sonnet-": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-haiku-": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5": (1.25, 10.0),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.0),
    "o4-mini": (1.10, 4.40),
    "o3": (2.0, 8.0),
}


def price_for(model: str | None, options: Any = None) -> tuple[float, float]:
    """(USD per million input tokens, output tokens): the agent's override if it sets one, zero
    for a self-hosted endpoint (base_url on this machine or a private network), else the table."""
    p_in = getattr(options, "price_in_per_mtok", None)
    p_out = getattr(options, "price_out_per_mtok", None)
    if p_in is not None or p_out is not None:
        return float(p_in or 0.0), float(p_out or 0.0)
    if getattr(options, "self_hosted", False):
        return 0.0, 0.0
    if not model:
        return 0.0, 0.0
    best = max((p for p in PRICES if model.startswith(p)), key=len, default=None)
    return PRICES[best] if best else (0.0, 0.0)


def cost_usd(model: str | None, tokens_in: int, tokens_out: int, options: Any = None) -> float:
    p_in, p_out = price_for(model, options)
    return (tokens_in * p_in + tokens_out * p_out) / 1e6


def ledger_path(layout: Layout, agent: str) -> Path:
    return layout.agent_dir(agent) / LEDGER


def append(layout: Layout, agent: str, record: dict[str, Any]) -> None:
    path = ledger_path(layout, agent)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"t": time.time(), "agent": agent, **record}
    append_line(path, (json.dumps(record, sort_keys=True, default=str) + "\n").encode(), durable=False)


def record_call(layout: Layout, agent: str, model: str | None, tokens_in: int, tokens_out: int,
                latency_s: float, ok: bool = True, error: str | None = None, attempts: int = 1,
                options: Any = None, endpoint: str | None = None) -> dict[str, Any]:
    rec = {"kind": "call", "model": model, "tokens_in": int(tokens_in), "tokens_out": int(tokens_out),
           "latency_s": round(float(latency_s), 4),
           "cost_usd": round(cost_usd(model, tokens_in, tokens_out, options), 8),
           "ok": ok, "error": error, "attempts": attempts, "endpoint": endpoint}
    append(layout, agent, rec)
    return rec


@dataclass
class AgentTotals:
    agent: str
    calls: int = 0
    failed_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cycles: int = 0
    proposed: int = 0
    submitted: int = 0
    rejected: int = 0
    last_status: str | None = None
    last_t: float | None = None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens"] = self.tokens
        return d


def _records(path: Path):
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith(b"\n"):
                continue  # a torn last line from a killed writer
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                yield rec


def totals(layout: Layout, agent: str) -> AgentTotals:
    t = AgentTotals(agent)
    for rec in _records(ledger_path(layout, agent)):
        kind = rec.get("kind")
        if kind == "call":
            t.calls += 1
            t.failed_calls += 0 if rec.get("ok") else 1
            t.tokens_in += int(rec.get("tokens_in") or 0)
            t.tokens_out += int(rec.get("tokens_out") or 0)
            t.cost_usd += float(rec.get("cost_usd") or 0.0)
            t.latency_s += float(rec.get("latency_s") or 0.0)
        elif kind == "cycle":
            t.cycles += 1
            t.proposed += int(rec.get("proposed") or 0)
            t.submitted += int(rec.get("submitted") or 0)
            t.rejected += int(rec.get("rejected") or 0)
            t.last_status = rec.get("status")
        t.last_t = rec.get("t", t.last_t)
    return t


def summarise(layout: Layout) -> dict[str, AgentTotals]:
    """Per-agent totals for every agent with a ledger under runs/agents/ (for `orze status`)."""
    out: dict[str, AgentTotals] = {}
    if not layout.agents.is_dir():
        return out
    for d in sorted(layout.agents.iterdir()):
        if (d / LEDGER).is_file():
            out[d.name] = totals(layout, d.name)
    return out
