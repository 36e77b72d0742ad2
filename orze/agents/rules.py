"""prompts/rules.md: the campaign's diversity budgets, banned regions and caps.

The file is Markdown with YAML front matter. The front matter is machine-readable and enforced on
every batch an agent proposes; the Markdown body is free text for the LLM and is rendered into the
prompt together with a plain-language summary of the front matter. The file is re-read every cycle
(`load_rules`), so an edit applies to the next batch without restarting anything.

Front matter (every key optional; unknown keys are an error naming the file and the field):

    min_other_backbone: 1     # per batch: at least this many ideas whose backbone is not the leader's
    min_other_encoder: 1      # per batch: at least this many ideas whose temporal_encoder is not the leader's
    banned:                   # partial configurations; an idea matching every key of one is rejected
      - {backbone: convnext, temporal_encoder: xlstm}
      - {loss: bce, pooling: [last, max]}   # a list means any of these values
      - {backbone: "siglip2+convnext"}      # a fused backbone is written with '+'
    caps:
      max_ideas_per_cycle: 5  # a longer batch is cut to this length
      max_same_backbone: 3    # per batch: ideas sharing one backbone value
      max_same_encoder: 3     # per batch: ideas sharing one temporal_encoder

Enforcement (`enforce`) is pure: it takes the canonical configs of a batch and the leader's config
and returns per-idea reasons. A diversity budget is a property of the batch; when it is not met, the
ideas that crowd it out (those on the leader's backbone/encoder, latest first) are the ones rejected,
until the remaining batch meets it (an empty batch meets every budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orze.space import Space
from orze.space.validate import coerce_value


class RulesError(ValueError):
    """prompts/rules.md is invalid; the message names the file and the field."""


class Caps(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_ideas_per_cycle: int | None = Field(default=None, ge=1)
    max_same_backbone: int | None = Field(default=None, ge=1)
    max_same_encoder: int | None = Field(default=None, ge=1)


class Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_other_backbone: int = Field(default=0, ge=0)
    min_other_encoder: int = Field(default=0, ge=0)
    banned: list[dict[str, Any]] = Field(default_factory=list)
    caps: Caps = Field(default_factory=Caps)
    text: str = Field(default="", exclude=True)


def split_front_matter(text: str) -> tuple[str, str]:
    """('yaml front matter', 'body'); no front matter gives ('', text)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return "", text
    for i in range(1, len(lines)):
        if lines[i].strip() in ("---", "..."):
            return "".join(lines[1:i]), "".join(lines[i + 1:])
    raise RulesError("front matter opened with '---' is never closed with a '---' line")


def parse_rules(text: str, space: Space | None = None, source: str = "prompts/rules.md") -> Rules:
    try:
        front, body = split_front_matter(text)
    except RulesError as e:
        raise RulesError(f"{source}: {e}") from None
    try:
        raw = yaml.safe_load(front) if front.strip() else {}
    except yaml.YAMLError as e:
        raise RulesError(f"{source}: front matter is not valid YAML: {e}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: front matter must be a mapping of rule: value")
    try:
        rules = Rules.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise RulesError(f"{source}: {where}: {err['msg']}") from None
    if space is not None:
        _check_banned(rules, space, source)
    rules.text = body.strip()
    return rules


def _check_banned(rules: Rules, space: Space, source: str) -> None:
    for i, region in enumerate(rules.banned):
        if not region:
            raise RulesError(f"{source}: banned[{i}]: an empty region would ban everything")
        for key, value in region.items():
            dim = space.dimensions.get(key)
            if dim is None:
                raise RulesError(f"{source}: banned[{i}].{key}: unknown dimension; allowed: "
                                 + ", ".join(space.dimensions))
            for v in (value if isinstance(value, list) else [value]):
                if isinstance(v, str) and "+" in v:
                    v = v.split("+")
                ok, why = coerce_value(dim, v)
                if not ok:
                    raise RulesError(f"{source}: banned[{i}].{key}: {why}")


def load_rules(path: Path, space: Space | None = None) -> Rules:
    """Read the rules file; a missing file means no rules."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Rules()
    return parse_rules(text, space, str(path))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) or isinstance(b, list) or (isinstance(b, str) and "+" in b):
        split = lambda v: sorted(v) if isinstance(v, list) else sorted(str(v).split("+"))
        return split(a) == split(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    return a == b


def matches(region: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether a canonical config lies in a banned region (every key matches; a list = any of)."""
    for key, wanted in region.items():
        have = config.get(key)
        options = wanted if isinstance(wanted, list) else [wanted]
        if not any(_same(have, w) for w in options):
            return False
    return True


def _label(v: Any) -> str:
    return "+".join(v) if isinstance(v, list) else str(v)


@dataclass
class Verdict:
    """Per-idea rejection reasons (index → reasons) and the batch's own remarks."""
    rejected: dict[int, list[str]] = field(default_factory=dict)

    def add(self, i: int, reason: str) -> None:
        self.rejected.setdefault(i, []).append(reason)

    @property
    def ok(self) -> bool:
        return not self.rejected


def enforce(rules: Rules, configs: list[dict[str, Any] | None],
            leader: dict[str, Any] | None) -> Verdict:
    """Judge a batch of canonical configs (None = already invalid, skipped) against the rules."""
    verdict = Verdict()
    live = [i for i, c in enumerate(configs) if c is not None]

    for i in live:
        for j, region in enumerate(rules.banned):
            if matches(region, configs[i]):
                shown = ", ".join(f"{k}={_label(v) if not isinstance(v, list) else '|'.join(map(_label, v))}"
                                  for k, v in region.items())
                verdict.add(i, f"rules.banned[{j}]: the region {{{shown}}} is banned")
    live = [i for i in live if i not in verdict.rejected]

    cap = rules.caps.max_ideas_per_cycle
    if cap is not None and len(live) > cap:
        for i in live[cap:]:
            verdict.add(i, f"rules.caps.max_ideas_per_cycle: at most {cap} ideas per batch")
        live = live[:cap]

    for dim, limit, rule in (("backbone", rules.caps.max_same_backbone, "max_same_backbone"),
                             ("temporal_encoder", rules.caps.max_same_encoder, "max_same_encoder")):
        if limit is None:
            continue
        seen: dict[str, int] = {}
        keep = []
        for i in live:
            key = _label(configs[i].get(dim))
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > limit:
                verdict.add(i, f"rules.caps.{rule}: at most {limit} ideas per batch with {dim}={key}")
            else:
                keep.append(i)
        live = keep

    if leader:
        # Both budgets are judged on the same batch so that a repair request lists every broken rule.
        for dim, need, rule in (("backbone", rules.min_other_backbone, "min_other_backbone"),
                                ("temporal_encoder", rules.min_other_encoder, "min_other_encoder")):
            if not need or dim not in leader:
                continue
            lead = leader[dim]
            others = [i for i in live if not _same(configs[i].get(dim), lead)]
            crowd = [i for i in live if _same(configs[i].get(dim), lead)]
            # Compliant when others >= min(need, batch size); drop crowding ideas, latest first.
            while crowd and len(others) < min(need, len(others) + len(crowd)):
                i = crowd.pop()
                verdict.add(i, f"rules.{rule}: each batch needs at least {need} idea(s) with a "
                               f"{dim} other than the leader's ({_label(lead)}); this batch has "
                               f"{len(others)}")
    return verdict


def render_rules(rules: Rules) -> str:
    """The rules in plain language for the prompt (the same ones `enforce` applies)."""
    lines = []
    if rules.min_other_backbone:
        lines.append(f"- At least {rules.min_other_backbone} idea(s) per batch must use a backbone "
                     "other than the current leader's.")
    if rules.min_other_encoder:
        lines.append(f"- At least {rules.min_other_encoder} idea(s) per batch must use a "
                     "temporal_encoder other than the current leader's.")
    caps = rules.caps
    if caps.max_ideas_per_cycle:
        lines.append(f"- At most {caps.max_ideas_per_cycle} ideas per batch.")
    if caps.max_same_backbone:
        lines.append(f"- At most {caps.max_same_backbone} ideas per batch may share one backbone.")
    if caps.max_same_encoder:
        lines.append(f"- At most {caps.max_same_encoder} ideas per batch may share one temporal_encoder.")
    for region in rules.banned:
        shown = ", ".join(f"{k}: {_label(v) if not isinstance(v, list) else ' or '.join(map(_label, v))}"
                          for k, v in region.items())
        lines.append(f"- Banned (never propose): {shown}")
    if not lines:
        lines.append("- No machine-checked rules.")
    out = "\n".join(lines)
    if rules.text:
        out += "\n\n" + rules.text
    return out


def _values(space: Space, dim: str, available: set[str] | None) -> list[Any] | None:
    d = space.dimensions.get(dim)
    if d is None or d.choices is None:
        return None
    vals = [c for c in d.choices if available is None or c in available]
    if dim == "backbone" and getattr(d, "fusion", 1) > 1 and len(vals) >= 2:
        vals = vals + [sorted(vals[:2])]  # a fusion is a backbone other than any single one
    return vals


def impossible(rules: Rules, space: Space, leader: dict[str, Any] | None,
               available_backbones: set[str] | None = None) -> dict[str, str]:
    """The diversity budgets this campaign cannot meet, with the reason (pure).

    `min_other_backbone` (`min_other_encoder`) needs a value of the dimension other than the
    leader's that the space allows, that no single-key banned region bans and, for backbones,
    that has features in the store (`available_backbones`; None: not checked). When there is none
    the rule can never be met; enforcing it would reject every batch forever, so the caller waives
    it and reports why."""
    out: dict[str, str] = {}
    if not leader:
        return out
    for dim, need, rule in (("backbone", rules.min_other_backbone, "min_other_backbone"),
                            ("temporal_encoder", rules.min_other_encoder, "min_other_encoder")):
        if not need or dim not in leader:
            continue
        vals = _values(space, dim, available_backbones if dim == "backbone" else None)
        if vals is None:
            continue
        banned = [r[dim] for r in rules.banned if set(r) == {dim}]
        banned_vals = [v for b in banned for v in (b if isinstance(b, list) else [b])]
        others = [v for v in vals if not _same(v, leader[dim]) and not any(_same(v, b) for b in banned_vals)]
        if not others:
            allowed = ", ".join(_label(v) for v in vals) or "nothing"
            where = "the space and the feature store allow" if dim == "backbone" and \
                available_backbones is not None else "the space allows"
            out[rule] = (f"rules.{rule}: cannot be met: {where} only {dim} {allowed} and the leader "
                         f"uses {_label(leader[dim])}; the rule is waived until another {dim} is "
                         "available")
    return out


def waive(rules: Rules, names: list[str]) -> Rules:
    """The rules without the named diversity budgets."""
    if not names:
        return rules
    out = rules.model_copy(update={n: 0 for n in names})
    out.text = rules.text
    return out
