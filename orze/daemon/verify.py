"""Run-time verification: did what ran match what was asked? (DESIGN.md §5, §7; docs/verification.md)

Pure functions over plain data. `verify_run` returns a `Verification`: the findings (each naming
the field and the evidence), the names of the checks that passed, and the run's verification
level: `behavioural` for the built-in worker, whose effective_config.json carries evidence
observed during the run (probes, hooks, counters; checked by orze.verification.behaviour), or
`self-reported` for a custom worker that supplies only the documented files. Every worker's
metric passes the metric-integrity checks (orze.verification.metric). Besides, `verify_run` compares the requested canonical configuration with
the effective configuration the worker read back from its built objects, and independently checks
the evaluation protocol:
- every requested dimension is reported and equal (floats to 1e-6 relative);
- the split hashes equal those the daemon computes itself from features/clips.csv, and the splits
  are disjoint by clip id (a leak changes a hash);
- selection used the validation split, and the chosen epoch is the validation optimum of the
  reported history (the test metric never chose anything);
- train and evaluation used the same sequence handling and length.
Any finding marks the run `misconfigured`, which keeps it off the ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from orze.verification.behaviour import behaviour_checks
from orze.verification.checks import Checks
from orze.verification.metric import MetricSpec, metric_checks

BEHAVIOURAL = "behavioural"
SELF_REPORTED = "self-reported"


@dataclass
class Verification:
    findings: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    level: str = SELF_REPORTED

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> dict[str, Any]:
        """What the leaderboard row carries."""
        return {"level": self.level, "checks_passed": len(self.passed),
                "checks_total": len(self.passed) + len(self.findings)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(float(a)) and math.isnan(float(b)):
            return True
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def config_diffs(requested: dict[str, Any], effective: dict[str, Any]) -> list[str]:
    out = []
    for key, want in requested.items():
        if key not in effective:
            out.append(f"{key}: requested {want!r}, not reported by the worker")
        elif not _same(want, effective[key]):
            out.append(f"{key}: requested {want!r}, ran {effective[key]!r}")
    return out


def protocol_checks(effective: dict[str, Any], expected_hashes: dict[str, str] | None,
                    sequences: bool = True) -> Checks:
    """Split hashes against the daemon's own, and identical train/eval sequence handling."""
    c = Checks()
    hashes = effective.get("split_hashes")
    if expected_hashes is not None:
        if not isinstance(hashes, dict):
            c.fail("split: the worker reported no split hashes")
        else:
            for split, want in expected_hashes.items():
                c.check(f"split.{split}", hashes.get(split) == want,
                        f"split: '{split}' clips differ from features/clips.csv "
                        f"(hash {hashes.get(split)} != {want})")
    seq = effective.get("sequence") or {}
    train = seq.get("train")
    evals = seq.get("eval") or {}
    if not sequences:
        pass
    elif not train or not evals:
        c.fail("sequence: train/eval sequence handling not reported")
    else:
        for split, ev in evals.items():
            c.check(f"sequence.{split}_as_train", ev == train,
                    f"sequence: {split} evaluation uses {ev} but training used {train}")
    return c


def protocol_findings(effective: dict[str, Any], metrics: dict[str, Any],
                      expected_hashes: dict[str, str] | None, sequences: bool = True,
                      spec: MetricSpec = MetricSpec()) -> list[str]:
    """Findings of the protocol checks and the selection checks (kept for callers of the old API)."""
    sel = metric_checks(metrics, spec).findings
    return protocol_checks(effective, expected_hashes, sequences).findings + \
        [f for f in sel if f.startswith("selection:")]


def verify_run(requested: dict[str, Any], effective: dict[str, Any] | None,
               metrics: dict[str, Any], expected_hashes: dict[str, str] | None,
               require_effective: bool = True, *, builtin: bool = False,
               expect: dict[str, Any] | None = None, spec: MetricSpec = MetricSpec()) -> Verification:
    """Every check for one finished run. `builtin`: the run came from the built-in worker, so its
    behavioural evidence is required and checked; `expect`: the daemon's expectations computed
    from the research directory (orze.daemon.expect); `spec`: the metric being ranked."""
    c = Checks()
    expect = expect or {}
    if effective is None:
        if require_effective:
            c.fail("effective_config.json missing: what ran cannot be verified")
    else:
        diffs = config_diffs(requested, effective)
        c.check("config.requested_dimensions", not diffs, "")
        c.findings = [f for f in c.findings if f] + diffs
        c.extend(protocol_checks(effective, expected_hashes, sequences="seq_len" in requested))
        if builtin:
            c.extend(behaviour_checks(requested, effective, metrics, expect, spec))
    c.extend(metric_checks(metrics, spec, expect.get("labels_hashes")))
    level = BEHAVIOURAL if builtin and effective is not None and isinstance(effective.get("evidence"), dict) \
        else SELF_REPORTED
    return Verification(c.findings, c.passed, level)
