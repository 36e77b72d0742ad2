"""Idea validation and canonical form.

`check_idea(space, raw)` takes one idea as parsed from YAML and returns either its canonical
configuration plus its metadata, or a list of errors that each name the field, what was given and
what is allowed. Nothing is silently dropped or defaulted over a bad value: an unknown key, a value
out of range, or a setting that would be ignored in this region of the space is an error.

Canonical form: every applicable dimension present (defaults filled in), inapplicable ones absent,
ints as ints, floats rounded to 6 significant digits, fusion lists sorted and de-nested. The
fingerprint is a hash of exactly this mapping, so two spellings of one experiment coincide.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from orze.space.schema import FUSED, Dimension, Space

PRIORITIES = ("critical", "high", "medium", "low")
SOURCES = ("human", "llm", "sweep", "tpe", "random", "replicate", "heal")
# Fields that describe an idea but are not part of the experiment (not fingerprinted).
META_FIELDS = ("idea_name", "priority", "parent", "rationale", "agent", "model", "source", "prune")
PRUNE_CHOICES = ("auto", "never")   # `prune: never`: the pruner never stops this run (docs/pruning.md)
_MAX_TEXT = 4000


@dataclass
class IdeaCheck:
    config: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _sig(x: float) -> float:
    return float(f"{x:.6g}")


def _as_number(value: Any) -> float | None:
    """Numbers, and strings that spell one ('3e-4' arrives from PyYAML as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace("_", ""))
        except ValueError:
            return None
    return None


def coerce_value(dim: Dimension, value: Any) -> tuple[bool, Any]:
    """(True, canonical value) or (False, reason). Pure; used for ideas and for space defaults."""
    if dim.type == "categorical":
        if isinstance(value, (list, tuple)):
            if dim.fusion <= 1:
                return False, f"got a list {list(value)!r}; allowed: {dim.describe_allowed()}"
            items = list(value)
            bad = [v for v in items if not isinstance(v, str) or v not in dim.choices]
            if bad:
                return False, f"{bad[0]!r} is not allowed; allowed: {dim.describe_allowed()}"
            if not items:
                return False, f"empty list; allowed: {dim.describe_allowed()}"
            if len(set(items)) != len(items):
                return False, f"repeated entries in {items!r}; fusion needs distinct choices"
            if len(items) > dim.fusion:
                return False, f"{len(items)} entries; at most {dim.fusion} can be fused"
            items = sorted(items)
            return True, items[0] if len(items) == 1 else items
        if not isinstance(value, str) or value not in dim.choices:
            hint = ""
            if isinstance(value, str):
                close = difflib.get_close_matches(value, dim.choices, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
            return False, f"{value!r} is not allowed{hint}; allowed: {dim.describe_allowed()}"
        return True, value

    number = _as_number(value)
    if number is None or not math.isfinite(number):
        return False, f"{value!r} is not {'an integer' if dim.type == 'int' else 'a number'}; allowed: {dim.describe_allowed()}"
    if dim.type == "int":
        if not float(number).is_integer():
            return False, f"{value!r} is not an integer; allowed: {dim.describe_allowed()}"
        number = int(number)
    else:
        number = _sig(number)
    if dim.choices is not None:
        if number not in [(_sig(c) if dim.type == "float" else c) for c in dim.choices]:
            return False, f"{value!r} is not allowed; allowed: {dim.describe_allowed()}"
    else:
        assert dim.low is not None and dim.high is not None
        if number < dim.low - 1e-12 or number > dim.high + 1e-12:
            return False, f"{value!r} is out of range; allowed: {dim.describe_allowed()}"
    return True, number


def applies(dim: Dimension, config: dict[str, Any]) -> tuple[bool, str]:
    """Whether `dim` applies given the (already canonical) values of the others, and why not."""
    for other, wanted in (dim.when or {}).items():
        have = config.get(other)
        if wanted == FUSED:
            if not isinstance(have, list):
                return False, f"{other} is a list of several (fusion)"
        elif isinstance(have, list) or have not in wanted:
            return False, f"{other} is {' or '.join(map(str, wanted))}"
    return True, ""


def _check_meta(raw: dict[str, Any], errors: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in META_FIELDS:
        if key not in raw or raw[key] is None:
            continue
        value = raw[key]
        if key == "priority":
            if value not in PRIORITIES:
                errors.append(f"priority: {value!r} is not allowed; allowed: one of {', '.join(PRIORITIES)}")
                continue
        elif key == "prune":
            if value not in PRUNE_CHOICES:
                errors.append(f"prune: {value!r} is not allowed; allowed: one of {', '.join(PRUNE_CHOICES)}")
                continue
        elif key == "source":
            if value not in SOURCES:
                errors.append(f"source: {value!r} is not allowed; allowed: one of {', '.join(SOURCES)}")
                continue
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
            errors.append(f"{key}: expected text, got {type(value).__name__}")
            continue
        value = str(value)
        if len(value) > _MAX_TEXT:
            errors.append(f"{key}: {len(value)} characters; at most {_MAX_TEXT}")
            continue
        meta[key] = value
    meta.setdefault("priority", "medium")
    return meta


def check_idea(space: Space, raw: Any) -> IdeaCheck:
    """Validate one raw idea against the space; see the module docstring for the contract."""
    result = IdeaCheck()
    if not isinstance(raw, dict):
        result.errors.append(f"an idea must be a mapping of field: value, got {type(raw).__name__}")
        return result
    dims = space.dimensions
    allowed = list(dims) + list(META_FIELDS)
    for key in raw:
        if not isinstance(key, str) or key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            result.errors.append(
                f"{key!r}: unknown field{hint}; allowed fields: {', '.join(allowed)}")
    result.meta = _check_meta(raw, result.errors)

    config: dict[str, Any] = {}
    # Unconditional dimensions first, so conditions can be judged on canonical values.
    ordered = sorted(dims.values(), key=lambda d: bool(d.when))
    for dim in ordered:
        given = dim.name in raw and raw[dim.name] is not None
        ok_here, why_not = applies(dim, config)
        if not ok_here:
            if given:
                result.errors.append(f"{dim.name}: only applies when {why_not}")
            continue
        ok, value = coerce_value(dim, raw[dim.name] if given else dim.default)
        if not ok:
            result.errors.append(f"{dim.name}: {value}")
            continue
        config[dim.name] = value

    for c in space.constraints:
        a, b = c.divisible
        if a in config and b in config and isinstance(config[b], int) and config[b] != 0:
            if config[a] % config[b] != 0:
                result.errors.append(
                    f"{a}: {config[a]} must be divisible by {b} ({config[b]})")
    if not result.errors:
        result.config = {k: config[k] for k in sorted(config)}
    return result
