"""A ledger of named checks: each passes or adds a finding that names the field and the evidence."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Checks:
    passed: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def check(self, name: str, ok: bool, finding: str) -> bool:
        """Record check `name`; on failure `finding` (prefixed by the field it concerns) is kept."""
        if ok:
            self.passed.append(name)
        else:
            self.findings.append(finding)
        return ok

    def fail(self, finding: str) -> None:
        self.findings.append(finding)

    def extend(self, other: "Checks") -> None:
        self.passed += other.passed
        self.findings += other.findings


def close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-9) -> bool:
    return abs(float(a) - float(b)) <= max(abs_, rel * max(abs(float(a)), abs(float(b))))


def number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
