"""A batch of proposed ideas judged against the space, the store and the rules: pure functions
over plain data, used by the agent loop (orze.agents.loop) for the first reply and the repair round.

`judge` validates each idea (`check_idea`), refuses what is finished or pending (fingerprints), what
repeats within the batch, and what breaks prompts/rules.md; `cap_batch` keeps at most the number of
ideas asked for; `merge_repair` judges the kept ideas and the model's replacements together (the
kept ones keep their place); `feedback` is the error text quoted back to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orze.agents.base import History
from orze.agents.rules import Rules, enforce
from orze.space import Space, check_idea, fingerprint


@dataclass
class Judged:
    raw: Any
    config: dict[str, Any] | None
    reasons: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def idea(self) -> dict[str, Any]:
        """What is submitted: the canonical config (exactly what was judged) plus the metadata."""
        return {**(self.config or {}), **self.meta}

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.reasons


@dataclass
class CycleReport:
    status: str                   # submitted | nothing | backpressure | budget | error | stopped
    proposed: int = 0
    submitted: int = 0
    rejected: int = 0
    repaired: bool = False
    detail: str = ""
    inbox_file: Path | None = None
    permanent: bool = False       # the error is one no retry fixes (401, 403, 404)
    retry_after: float | None = None

    @property
    def failed(self) -> bool:
        """A proposing cycle that erred or submitted nothing (what backs the agent off)."""
        return self.status in ("error", "nothing")


def idea_name(raw: Any, i: int) -> str:
    label = raw.get("idea_name") if isinstance(raw, dict) else None
    return f"idea {i + 1}" + (f" ({label})" if label else "")


def judge(space: Space, rules: Rules, raws: list[Any], history: History) -> list[Judged]:
    """Validate a batch (pure): space, duplicates, then the rules over the valid ones."""
    known = {fingerprint(r["config"]) for r in history.rows if isinstance(r.get("config"), dict)}
    known |= {fingerprint(c) for c in history.pending}
    out: list[Judged] = []
    batch: dict[str, int] = {}
    for i, raw in enumerate(raws):
        check = check_idea(space, raw)
        j = Judged(raw, check.config, list(check.errors), dict(check.meta))
        if check.config is not None:
            fp = fingerprint(check.config)
            if fp in known:
                j.reasons.append("this configuration was already run or is queued; propose a new one")
            elif fp in batch:
                j.reasons.append(f"same configuration as idea {batch[fp] + 1} of this batch")
            else:
                batch[fp] = i
        out.append(j)
    leader = history.leader()
    verdict = enforce(rules, [j.config if j.ok else None for j in out],
                      (leader or {}).get("config"))
    for i, reasons in verdict.rejected.items():
        out[i].reasons.extend(reasons)
    return out


RESAMPLE_FACTOR = 4


def select_compliant(space: Space, rules: Rules, candidates: list[Any], history: History,
                     n: int) -> list[Judged]:
    """Greedily pick up to n candidates whose batch passes validation and every rule. Two passes,
    so that ideas needing a more diverse batch (a leader's backbone under min_other_backbone)
    can join once a diverse idea is in."""
    batch: list[Any] = []
    for _ in range(2):
        for cand in candidates:
            if len(batch) >= n:
                break
            if any(cand is b for b in batch):
                continue
            trial = judge(space, rules, batch + [cand], history)
            if all(j.ok for j in trial):
                batch.append(cand)
    return judge(space, rules, batch, history) if batch else []


def feedback(judged: list[Judged], parse_errors: list[str]) -> list[str]:
    errs = [f"reply: {e}" for e in parse_errors]
    for i, j in enumerate(judged):
        errs.extend(f"{idea_name(j.raw, i)}: {r}" for r in j.reasons)
    return errs


def cap_batch(judged: list[Judged], n: int) -> list[Judged]:
    """Reject the valid ideas beyond the `n` asked for (a budget or the queue's room set n)."""
    seen = 0
    for j in judged:
        if j.ok:
            seen += 1
            if seen > n:
                j.reasons.append(f"more ideas than the {n} asked for")
    return judged


def merge_repair(space: Space, rules: Rules, kept: list[Any], replacements: list[Any],
                 history: History, limit: int | None = None) -> tuple[list[Judged], list[Judged]]:
    """(accepted, rejected) after a repair round (pure). The kept ideas come first and stay unless
    they fail on their own; each replacement joins if the batch still passes every check (two
    passes, so that one needing a more diverse batch can join once a diverse one is in). A
    replacement left out gets the reasons it would break the batch with."""
    base = judge(space, rules, kept, history) if kept else []
    batch = [j.raw for j in base if j.ok]
    rejected = [j for j in base if not j.ok]
    chosen: list[Any] = []
    for _ in range(2):
        for cand in replacements:
            if limit is not None and len(chosen) >= limit:
                break
            if any(cand is c for c in chosen):
                continue
            if all(j.ok for j in judge(space, rules, batch + chosen + [cand], history)):
                chosen.append(cand)
    for cand in replacements:
        if any(cand is c for c in chosen):
            continue
        trial = judge(space, rules, batch + chosen + [cand], history)
        mine = trial[-1]
        if not mine.reasons and limit is not None and len(chosen) >= limit:
            mine.reasons = [f"more ideas than the {limit} asked for"]
        elif not mine.reasons:
            others = [r for j in trial[:-1] for r in j.reasons]
            mine.reasons = ["it would make the batch break a rule: " + "; ".join(others[:3])]
        rejected.append(mine)
    accepted = judge(space, rules, batch + chosen, history) if batch or chosen else []
    return accepted, rejected
