"""What happens to a finished attempt: a pure decision over plain data, tested without processes.

The evidence is structured, never words searched for in a log: the daemon's own stop reason
(timeout, stall, shutdown), failure.json (the exception class the worker caught, or the class a
custom worker declares), the exit status, metrics.json and the verification findings. From it:

- RECORD: the attempt's final status (done / pruned / misconfigured / failed) and its error; a
  run that stopped early because the pruner asked it to (prune.json, and `pruned` in its
  metrics.json) is `pruned`, verified over the epochs it completed like any other;
- RETRY: another attempt, within `max_attempts`: a transient failure (crash, killed) as it is, a
  healable one (oom, nan_loss) with a config-level fix (daemon/heal.py) whose validity and new
  fingerprint are checked here; if the healed configuration already exists, `fallback` records the
  failure instead.
A shutdown never uses an attempt's retry: the daemon releases such runs before they get here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orze.daemon.heal import heal_patch
from orze.layout import RUN_METRICS
from orze.space import Space, check_idea, fingerprint
from orze.vocab import FailureClass, RunStatus


@dataclass(frozen=True)
class Evidence:
    code: int                             # the worker's exit status (negative: killed by a signal)
    stop_reason: str | None               # why the daemon stopped it: timeout, stalled, shutdown, …
    metrics: dict[str, Any] | None        # metrics.json
    failure: dict[str, Any] | None        # failure.json
    findings: list[str] | None = None     # verification findings (for an attempt that succeeded)
    attempt: int = 1
    verification: dict[str, Any] | None = None   # level and checks passed, for the row
    prune_request: dict[str, Any] | None = None  # prune.json: the pruner asked this run to stop

    @property
    def succeeded(self) -> bool:
        return self.code == 0 and self.metrics is not None and self.stop_reason is None


@dataclass(frozen=True)
class Record:
    status: RunStatus
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Retry:
    note: dict[str, Any]                                  # appended to the idea's history
    healed: tuple[dict[str, Any], str] | None = None      # (config, fingerprint) of a healed retry
    fallback: Record = field(default_factory=lambda: Record(RunStatus.FAILED))


Decision = Record | Retry


def classify(ev: Evidence) -> dict[str, Any]:
    """The failure class and message of an attempt that did not succeed."""
    if ev.stop_reason in (FailureClass.TIMEOUT, FailureClass.STALLED):
        return {"class": FailureClass(ev.stop_reason), "message": f"worker {ev.stop_reason}"}
    if ev.failure is not None and "class" in ev.failure:
        declared = FailureClass.parse(ev.failure["class"])
        message = str(ev.failure.get("message", ""))
        if declared is None:
            return {"class": FailureClass.CRASH,
                    "message": f"failure.json names an unknown class {ev.failure['class']!r}: {message}"}
        return {"class": declared, "message": message}
    if ev.code < 0:
        return {"class": FailureClass.KILLED, "message": f"worker killed by signal {-ev.code}"}
    if ev.code == 0 and ev.metrics is None:
        return {"class": FailureClass.NO_METRICS, "message": f"worker exited 0 without {RUN_METRICS}"}
    return {"class": FailureClass.CRASH, "message": f"worker exited with status {ev.code}"}


def judge(ev: Evidence) -> Record:
    """The final status the evidence supports, before any retry."""
    if ev.succeeded:
        if not isinstance(ev.metrics.get("metric"), (int, float)):
            return Record(RunStatus.FAILED,
                          {"class": FailureClass.NO_METRIC, "message": "metrics.json has no numeric 'metric'"})
        findings = list(ev.findings or [])
        pruned = ev.metrics.get("pruned")      # null (or absent) for a run that ran its course
        if pruned is not None and ev.prune_request is None:
            findings.append("pruned: metrics.json says the run was pruned, but the daemon never asked it "
                            "to stop (no prune.json); a run stops early only at the pruner's request")
        elif pruned is not None and _stopped_before(pruned, ev.prune_request):
            findings.append(f"pruned: stopped after epoch {pruned.get('stopped_after_epoch')!r}, before the "
                            f"epoch {ev.prune_request.get('epoch')} the pruner judged")
        if findings:
            return Record(RunStatus.MISCONFIGURED, {"class": FailureClass.MISCONFIGURED, "findings": findings})
        if pruned is not None:
            return Record(RunStatus.PRUNED)
        return Record(RunStatus.DONE)
    return Record(RunStatus.FAILED, classify(ev))


def _stopped_before(pruned: Any, request: dict[str, Any]) -> bool:
    stopped = pruned.get("stopped_after_epoch") if isinstance(pruned, dict) else None
    judged = request.get("epoch")
    return not isinstance(stopped, int) or (isinstance(judged, int) and stopped < judged)


def decide(ev: Evidence, config: dict[str, Any], fp: str, space: Space, max_attempts: int) -> Decision:
    record = judge(ev)
    if record.status != RunStatus.FAILED or ev.attempt >= max_attempts or ev.stop_reason == "shutdown":
        return record
    cls = FailureClass(record.error["class"])
    note: dict[str, Any] = {"attempt": ev.attempt, "failure": str(cls), "message": record.error.get("message")}
    if cls.transient:
        return Retry(note, fallback=record)
    healed = heal_patch(space, config, cls)
    if healed is None:
        return record
    patch, reason = healed
    check = check_idea(space, {**config, **patch})
    if not check.ok:
        return record
    note.update({"heal": reason, "patch": patch, "previous_fingerprint": fp})
    return Retry(note, healed=(check.config, fingerprint(check.config)), fallback=record)
