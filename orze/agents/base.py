"""The policy interface: history in, ideas out.

A policy sees a `History` (plain data read from the research directory) and returns raw idea
mappings. Everything it returns goes through the same validation as a human's submission, so a
policy can never bypass the space's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orze.space import Space


@dataclass
class History:
    space: Space
    rows: list[dict[str, Any]] = field(default_factory=list)       # leaderboard rows, file order
    pending: list[dict[str, Any]] = field(default_factory=list)    # queued/running canonical configs
    failures: list[dict[str, Any]] = field(default_factory=list)   # recent failed/misconfigured rows
    rules: dict[str, Any] = field(default_factory=dict)            # prompts/rules.md front matter
    rules_text: str = ""


class Policy(Protocol):
    name: str

    def propose(self, history: History, n: int) -> list[dict[str, Any]]:
        ...
