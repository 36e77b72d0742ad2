"""One agent's research loop: backpressure → history → propose → validate + rules → (one repair
round) → submit, with everything it did recorded.

A cycle:
  1. budget: stop for good when the ledger's tokens or dollars reach the spec's budget, or the
     agent has submitted `max_ideas` ideas (status "budget"; `run` returns).
  2. backpressure: pending = runs/queue/*.json + runs/inbox/*.yaml files (not yet admitted); propose
     only while pending < queue_limit, and at most queue_limit - pending ideas.
  3. history and rules are read afresh (prompts/ edits apply now), the policy proposes.
  4. every idea is stamped with agent / model / source (the policy cannot claim another origin),
     validated by `check_idea`, checked against what is finished or pending (fingerprints),
     against its own batch, and against prompts/rules.md.
  5. a policy that can `repair` (the LLM policies) gets one round with every error quoted and
     returns a complete new batch, judged the same way.
  6. valid ideas go into one inbox file (`submit_ideas`); each rejected idea is appended to
     runs/agents/<name>/rejected.jsonl with its reasons (the daemon never sees them); the cycle's
     counts go to the ledger.
Provider failures end the cycle (recorded), never the loop.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orze.agents import ledger
from orze.agents.base import History
from orze.agents.context import PromptError, read_history
from orze.agents.keys import redact
from orze.agents.retry import ProviderError
from orze.agents.rules import Rules, RulesError, enforce, load_rules
from orze.agents.spec import AgentSpec
from orze.layout import Layout
from orze.space import Space, SpaceError, check_idea, fingerprint, load_space
from orze.store.inbox import submit_ideas

REJECTED = "rejected.jsonl"


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
    status: str                   # submitted | nothing | backpressure | budget | error
    proposed: int = 0
    submitted: int = 0
    rejected: int = 0
    repaired: bool = False
    detail: str = ""
    inbox_file: Path | None = None


def _name(raw: Any, i: int) -> str:
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
        errs.extend(f"{_name(j.raw, i)}: {r}" for r in j.reasons)
    return errs


class AgentLoop:
    def __init__(self, layout: Layout, spec: AgentSpec, policy: Any, metric_name: str = "val_ap",
                 log: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                 should_stop: Callable[[], bool] | None = None):
        self.layout = layout
        self.spec = spec
        self.policy = policy
        self.metric_name = metric_name
        self.log = log or (lambda msg: print(redact(msg), flush=True))
        self.sleep = sleep
        self.should_stop = should_stop or (lambda: False)  # e.g. the host's lease is no longer ours
        self.cycle = 0
        self.dir = layout.agent_dir(spec.name)

    # ------------------------------------------------------------------ checks
    def queue_depth(self) -> int:
        n = 0
        for d, pattern in ((self.layout.queue, "*.json"), (self.layout.inbox, "*.yaml")):
            if d.is_dir():
                n += sum(1 for _ in d.glob(pattern))
        return n

    def budget_reason(self) -> str | None:
        t = ledger.totals(self.layout, self.spec.name)
        s = self.spec
        if s.budget_tokens is not None and t.tokens >= s.budget_tokens:
            return f"token budget reached ({t.tokens} of {s.budget_tokens})"
        if s.budget_usd is not None and t.cost_usd >= s.budget_usd:
            return f"dollar budget reached (${t.cost_usd:.4f} of ${s.budget_usd:.4f})"
        if s.max_ideas is not None and t.submitted >= s.max_ideas:
            return f"max_ideas reached ({t.submitted} of {s.max_ideas})"
        return None

    def _random_candidates(self, history: History, n: int) -> list[Any]:
        """Uniform candidates (inside the agent's subspace), tagged source: random, for when a
        converged model-based policy (TPE) proposes nothing but the leader's region."""
        from orze.agents.base import SubspacePolicy
        from orze.agents.policies.random_policy import RandomPolicy

        fallback: Any = RandomPolicy(seed=self.spec.seed * 100_003 + self.cycle)
        if isinstance(self.policy, SubspacePolicy):
            fallback = SubspacePolicy(fallback, self.policy.subspace)
        out = list(fallback.propose(history, n))
        for raw in out:
            raw["agent"], raw["source"] = self.spec.name, "random"
        return out

    # ------------------------------------------------------------------ one cycle
    def _stamp(self, raws: list[Any]) -> list[Any]:
        model = getattr(self.policy, "model", None)
        for raw in raws:
            if isinstance(raw, dict):
                raw["agent"] = self.spec.name
                raw["source"] = self.policy.source
                if model:
                    raw["model"] = model
                else:
                    raw.pop("model", None)
        return raws

    def _record(self, report: CycleReport) -> CycleReport:
        ledger.append(self.layout, self.spec.name, {
            "kind": "cycle", "cycle": self.cycle, "status": report.status, "proposed": report.proposed,
            "submitted": report.submitted, "rejected": report.rejected, "repaired": report.repaired,
            "detail": redact(report.detail)[:500]})
        return report

    def _reject(self, judged: list[Judged], stage: str) -> None:
        path = self.dir / REJECTED
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps({"t": time.time(), "agent": self.spec.name, "cycle": self.cycle,
                                    "stage": stage, "idea": j.raw, "reasons": j.reasons},
                                   default=str) + "\n" for j in judged)
        if lines:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, redact(lines).encode())
            finally:
                os.close(fd)

    def run_cycle(self) -> CycleReport:
        self.cycle += 1
        reason = self.budget_reason()
        if reason:
            return CycleReport("budget", detail=reason)
        depth = self.queue_depth()
        room = self.spec.queue_limit - depth
        if room <= 0:
            return CycleReport("backpressure", detail=f"{depth} pending ≥ queue_limit {self.spec.queue_limit}")
        try:
            space = load_space(self.layout.space_config)
            rules = load_rules(self.layout.rules_prompt, space)
        except (SpaceError, RulesError) as e:
            return self._record(CycleReport("error", detail=str(e)))
        n = min(self.spec.ideas_per_cycle, room)
        if rules.caps.max_ideas_per_cycle:
            n = min(n, rules.caps.max_ideas_per_cycle)
        if self.spec.max_ideas is not None:
            n = min(n, self.spec.max_ideas - ledger.totals(self.layout, self.spec.name).submitted)
        history = read_history(self.layout, space, rules, self.metric_name)

        report = CycleReport("nothing")
        try:
            raws = self._stamp(list(self.policy.propose(history, n)))
            parse_errors = list(getattr(self.policy, "parse_errors", []) or [])
            judged = judge(space, rules, raws, history)
            report.proposed = len(raws)
            errors = feedback(judged, parse_errors)
            if errors and hasattr(self.policy, "repair"):
                report.repaired = True
                self.log(f"[{self.spec.name}] cycle {self.cycle}: repair round for {len(errors)} problem(s)")
                first = judged
                try:
                    raws = self._stamp(list(self.policy.repair(errors)))
                    judged = judge(space, rules, raws, history)
                    still = list(getattr(self.policy, "parse_errors", []) or [])
                    if still:  # an unreadable repair reply: nothing to judge, say why
                        report.detail = "repair reply: " + "; ".join(still)
                    report.proposed += len(raws)
                    self._reject([j for j in first if not j.ok], "replaced in repair round")
                except ProviderError as e:
                    report.detail = f"repair call failed: {e}"
            elif errors:
                # An offline policy cannot be argued with: draw more candidates and keep a batch
                # that meets the rules, else a policy that exploits the leader (TPE) would be
                # rejected every cycle forever.
                extra = self._stamp(list(self.policy.propose(history, RESAMPLE_FACTOR * n)))
                extra += self._random_candidates(history, RESAMPLE_FACTOR * n)
                report.proposed += len(extra)
                chosen = select_compliant(space, rules, [j.raw for j in judged] + extra, history, n)
                self._reject([j for j in judged if not j.ok], "validation")
                report.rejected = sum(not j.ok for j in judged)
                report.detail = f"resampled {len(extra)} candidates to meet the rules; kept {len(chosen)}"
                judged = chosen
        except (ProviderError, PromptError) as e:
            report.status = "error"
            report.detail = str(e)
            self.log(f"[{self.spec.name}] cycle {self.cycle}: {e}")
            return self._record(report)

        good = [j for j in judged if j.ok]
        bad = [j for j in judged if not j.ok]
        self._reject(bad, "after repair" if report.repaired else "validation")
        report.rejected += len(bad)
        if good:
            report.inbox_file = submit_ideas(self.layout, [j.idea for j in good], origin=self.spec.name)
            report.submitted = len(good)
            report.status = "submitted"
        self.log(f"[{self.spec.name}] cycle {self.cycle}: proposed {report.proposed}, "
                 f"submitted {report.submitted}, rejected {report.rejected}")
        return self._record(report)

    def run(self, cycles: int | None = None) -> list[CycleReport]:
        """Cycles until `cycles` proposing cycles ran (None: forever) or the budget is reached."""
        reports: list[CycleReport] = []
        done = 0
        while cycles is None or done < cycles:
            if self.should_stop():
                self.log(f"[{self.spec.name}] stopping: the agent lease is no longer ours")
                break
            report = self.run_cycle()
            reports.append(report)
            if report.status == "budget":
                self.log(f"[{self.spec.name}] stopping: {report.detail}")
                break
            if report.status != "backpressure":
                done += 1
            if cycles is not None and done >= cycles:
                break
            self.sleep(self.spec.interval_s if report.status != "backpressure"
                       else max(self.spec.interval_s, 0.5))
        return reports
