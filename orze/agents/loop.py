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
  5. a policy that can `repair` (the LLM policies) gets one round: the ideas that passed are kept,
     and the model is asked only for replacements of the failed ones, with every error quoted;
     the replacements are judged together with the kept ideas (which keep their place).
  6. valid ideas go into one inbox file (`submit_ideas`); each rejected idea is appended to
     runs/agents/<name>/rejected.jsonl with its reasons and stage (the daemon never sees them); the
     cycle's counts go to the ledger, and every idea is accounted for:
     proposed = submitted + rejected.
A diversity budget that the space or the feature store makes impossible (one backbone) is waived
and reported once (`rules.impossible`), never left to reject every batch.
Provider failures end the cycle (recorded), never the loop. Failing cycles back off and open a
circuit (orze.agents.health). The loop stops when `should_stop` says so (the agent's lease is
gone); waits are cut short then, and no provider call starts after it.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from orze.agent_config import AgentSpec
from orze.agents import health as health_mod
from orze.agents import ledger
from orze.agents.base import History, SubspacePolicy, restrict_space
from orze.agents.context import PromptError, available_backbones, read_history
from orze.agents.judging import (
    RESAMPLE_FACTOR,
    CycleReport,
    Judged,
    cap_batch,
    feedback,
    idea_name,
    judge,
    merge_repair,
    select_compliant,
)
from orze.agents.keys import redact
from orze.agents.retry import ProviderError, Stopped
from orze.agents.rules import Rules, RulesError, impossible, load_rules, waive
from orze.config import TaskConfig
from orze.layout import Layout
from orze.space import Space, SpaceError, load_space
from orze.store.atomic import append_line
from orze.store.inbox import submit_ideas

REJECTED = "rejected.jsonl"


class AgentLoop:
    def __init__(self, layout: Layout, spec: AgentSpec, policy: Any, task: TaskConfig | None = None,
                 log: Callable[[str], None] | None = None, sleep: Callable[[float], None] = time.sleep,
                 should_stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.time):
        self.layout = layout
        self.spec = spec
        self.policy = policy
        task = task or TaskConfig()
        # the project's task.metric, as the registry names its history key (val_<name>)
        self.metric_name, self.task = task.spec.history_key, task.type
        self.log = log or (lambda msg: print(redact(msg), flush=True))
        self.sleep = sleep
        self.clock = clock
        self.should_stop = should_stop or (lambda: False)  # e.g. the host's lease is no longer ours
        self.cycle = 0
        self.dir = layout.agent_dir(spec.name)
        self._noticed: set[str] = set()
        self._full_logged = False
        if hasattr(policy, "should_stop"):  # LLM policies: no retry starts once we must stop
            policy.should_stop = self.should_stop
            policy.sleep = self._wait

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
        from orze.agents.policies.random_policy import RandomPolicy

        fallback: Any = RandomPolicy(seed=self.spec.seed * 100_003 + self.cycle)
        if isinstance(self.policy, SubspacePolicy):
            fallback = SubspacePolicy(fallback, self.policy.subspace)
        out = list(fallback.propose(history, n))
        for raw in out:
            raw["agent"], raw["source"] = self.spec.name, "random"
        return out

    def _feasible_rules(self, rules: Rules, space: Space, history: History) -> Rules:
        """The rules minus the diversity budgets this campaign cannot meet (each reported once)."""
        policy_space = space
        if isinstance(self.policy, SubspacePolicy):
            try:
                policy_space = restrict_space(space, self.policy.subspace)
            except ValueError:
                pass
        leader = (history.leader() or {}).get("config")
        found = impossible(rules, policy_space, leader, available_backbones(self.layout))
        for rule, why in found.items():
            if why not in self._noticed:
                self._noticed.add(why)
                self.log(f"[{self.spec.name}] {why}")
                ledger.append(self.layout, self.spec.name, {"kind": "notice", "rule": rule, "detail": why})
                h = health_mod.load(self.layout, self.spec.name)
                if why not in h.notices:
                    h.notices = (h.notices + [why])[-5:]
                    health_mod.save(self.layout, self.spec.name, h)
        return waive(rules, list(found))

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
            append_line(path, redact(lines).encode(), durable=False)

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
        history = read_history(self.layout, space, rules, self.metric_name, self.task)
        rules = self._feasible_rules(rules, space, history)

        report = CycleReport("nothing")
        pending: list[Judged] = []   # judged ideas not yet submitted or rejected (for a stop)
        try:
            raws = self._stamp(list(self.policy.propose(history, n)))
            parse_errors = list(getattr(self.policy, "parse_errors", []) or [])
            judged = cap_batch(judge(space, rules, raws, history), n)
            pending = judged
            report.proposed = len(raws)
            errors = feedback(judged, parse_errors)
            if errors and hasattr(self.policy, "repair"):
                kept = [j for j in judged if j.ok]
                failed = [j for j in judged if not j.ok]
                self._reject(failed, "before repair")
                report.rejected += len(failed)
                pending = kept
                missing = n - len(kept)
                if missing > 0:
                    report.repaired = True
                    self.log(f"[{self.spec.name}] cycle {self.cycle}: repair round for {len(errors)} "
                             f"problem(s), {len(kept)} idea(s) kept, asking for {missing}")
                    names = [idea_name(j.raw, i) for i, j in enumerate(judged) if j.ok]
                    try:
                        new = self._stamp(list(self.policy.repair(errors, missing, names)))
                        still = list(getattr(self.policy, "parse_errors", []) or [])
                        if still:  # an unreadable repair reply: the kept ideas still go in
                            report.detail = "repair reply: " + "; ".join(still)
                        report.proposed += len(new)
                        accepted, refused = merge_repair(space, rules, [j.raw for j in kept], new,
                                                         history, limit=missing)
                        judged = accepted + refused
                    except ProviderError as e:
                        report.detail = f"repair call failed: {e}"
                        report.permanent, report.retry_after = e.permanent, e.retry_after
                        judged = kept
                else:
                    judged = kept
            elif errors:
                # An offline policy cannot be argued with: draw more candidates and keep a batch
                # that meets the rules, else a policy that exploits the leader (TPE) would be
                # rejected every cycle forever. Only the ideas kept count as proposed.
                extra = self._stamp(list(self.policy.propose(history, RESAMPLE_FACTOR * n)))
                extra += self._random_candidates(history, RESAMPLE_FACTOR * n)
                chosen = select_compliant(space, rules, [j.raw for j in judged] + extra, history, n)
                picked = [c.raw for c in chosen]
                left = [j for j in judged if not any(j.raw is p for p in picked)]
                for j in left:
                    if j.ok:
                        j.reasons.append("left out: the batch was filled with candidates that meet the rules")
                self._reject(left, "validation")
                report.rejected += len(left)
                report.proposed += sum(1 for p in picked if not any(p is r for r in raws))
                report.detail = f"drew {len(extra)} more candidates to meet the rules; kept {len(chosen)}"
                judged = chosen
        except Stopped as e:
            return self._stop_cycle(report, pending, str(e))
        except (ProviderError, PromptError) as e:
            report.status = "error"
            report.detail = str(e)
            if isinstance(e, ProviderError):
                report.permanent, report.retry_after = e.permanent, e.retry_after
            self.log(f"[{self.spec.name}] cycle {self.cycle}: {e}")
            return self._record(report)

        good = [j for j in judged if j.ok]
        bad = [j for j in judged if not j.ok]
        self._reject(bad, "after repair" if report.repaired else "validation")
        report.rejected += len(bad)
        if self.should_stop():  # the lease went during the cycle: submit nothing, not a failure
            return self._stop_cycle(report, good, "the agent's lease is gone")
        if good:
            report.inbox_file = submit_ideas(self.layout, [j.idea for j in good], origin=self.spec.name)
            report.submitted = len(good)
            report.status = "submitted"
        self.log(f"[{self.spec.name}] cycle {self.cycle}: proposed {report.proposed}, "
                 f"submitted {report.submitted}, rejected {report.rejected}")
        return self._record(report)

    def _stop_cycle(self, report: CycleReport, pending: list[Judged], why: str) -> CycleReport:
        """The lease went while a cycle ran: nothing more is submitted; what was judged is recorded."""
        for j in pending:
            j.reasons.append(f"not submitted: {why}")
        self._reject(pending, "stopped")
        report.rejected += len(pending)
        report.status, report.detail = "stopped", why
        return self._record(report)

    # ------------------------------------------------------------------ waiting
    def _wait(self, seconds: float, resumable: bool = False) -> bool:
        """Sleep up to `seconds` in short steps; False when cut short (stop, or a --resume)."""
        end = self.clock() + max(0.0, seconds)
        while True:
            if self.should_stop():
                return False
            if resumable and health_mod.load(self.layout, self.spec.name).resumed:
                return False
            left = end - self.clock()
            if left <= 0:
                return True
            self.sleep(min(left, 1.0))

    def _after(self, report: CycleReport) -> None:
        """Update the health state after a proposing cycle, logging a change of state."""
        old = health_mod.load(self.layout, self.spec.name)
        new = health_mod.next_state(old, report.failed, report.detail or report.status, self.spec,
                                    self.clock(), report.permanent, report.retry_after)
        if (new.state, new.failures) != (old.state, old.failures) or new.state != health_mod.OK:
            health_mod.save(self.layout, self.spec.name, new)
            if new.state != old.state or new.state != health_mod.OK:
                self.log(f"[{self.spec.name}] {new.state}"
                         + (f" for {new.until - self.clock():.0f}s: {new.reason}" if new.until else ""))
                ledger.append(self.layout, self.spec.name, {
                    "kind": "health", "state": new.state, "failures": new.failures,
                    "since": new.t, "until": new.until, "reason": redact(new.reason)[:300]})

    def run(self, cycles: int | None = None, wait_for_room: bool = True) -> list[CycleReport]:
        """Cycles until `cycles` proposing cycles ran (None: forever), the budget is reached, or
        the lease is gone. Backpressure cycles do not count; with wait_for_room=False the first
        one ends the run (`orze agent --once` on a full queue)."""
        reports: list[CycleReport] = []
        done = 0
        while cycles is None or done < cycles:
            if self.should_stop():
                self.log(f"[{self.spec.name}] stopping: the agent lease is no longer ours")
                break
            h = health_mod.load(self.layout, self.spec.name)
            if h.waiting(self.clock()):
                self._wait(h.until - self.clock(), resumable=True)
                continue
            report = self.run_cycle()
            reports.append(report)
            if report.status in ("budget", "stopped"):
                self.log(f"[{self.spec.name}] stopping: {report.detail}")
                break
            if report.status == "backpressure":
                if not self._full_logged:
                    self.log(f"[{self.spec.name}] waiting for room: {report.detail}")
                    self._full_logged = True
                if not wait_for_room:
                    break
                self._wait(max(self.spec.interval_s, 0.5))
                continue
            self._full_logged = False
            self._after(report)
            done += 1
            if cycles is not None and done >= cycles:
                break
            self._wait(self.spec.interval_s)
        return reports
