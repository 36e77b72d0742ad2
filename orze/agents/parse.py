"""LLM reply → raw idea mappings, tolerant of the usual noise, never of unknown keys.

Accepted shapes: a fenced ```yaml block (or several) or bare YAML, with prose around it; a list of
ideas, a single idea mapping, or `{ideas: [...]}`. Repairs that only restore what the model clearly
meant: a key collapsed with its value (`{"epochs: 40": None}`), an idea written as one line of
`key: value, key: value` pairs. Values are left as the YAML gave them (`3e-4` stays a string: the
space's validation accepts numeric strings). Keys are never renamed, dropped or guessed: an unknown
key reaches `check_idea`, which rejects it with a reason that the repair round quotes back.

`parse_reply` is pure and returns the ideas plus the problems that prevented reading part of the
reply (e.g. YAML syntax errors), which are quoted in the repair round like validation errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PAIR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.*?)\s*$")
_YAMLISH = re.compile(r"^\s*(-\s|[A-Za-z_][A-Za-z0-9_]*\s*:)")


@dataclass
class ParsedReply:
    ideas: list[Any] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _load(text: str) -> tuple[Any, str | None]:
    try:
        return yaml.safe_load(text), None
    except yaml.YAMLError as e:
        return None, f"the YAML could not be read: {str(e).splitlines()[0] if str(e) else e}"


def _scalar(text: str) -> Any:
    value, err = _load(text)
    return text if err or isinstance(value, dict) else value


def split_pairs(line: str) -> dict[str, Any] | None:
    """'lr: 3e-4, epochs: 10' → {'lr': '3e-4', 'epochs': 10}; None unless every part is a pair."""
    parts = [p for p in re.split(r"[,;]\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*[:=])", line.strip()) if p.strip()]
    out: dict[str, Any] = {}
    for part in parts:
        m = _PAIR.match(part)
        if not m or not m.group(2):
            return None
        out[m.group(1)] = _scalar(m.group(2).strip().rstrip(","))
    return out or None


def repair_idea(idea: Any) -> Any:
    """Undo collapsed keys; anything that is not recognisably an idea is returned unchanged."""
    if isinstance(idea, str):
        pairs = split_pairs(idea)
        return pairs if pairs is not None else idea
    if not isinstance(idea, dict):
        return idea
    out: dict[Any, Any] = {}
    for key, value in idea.items():
        if isinstance(key, str) and value is None and (":" in key or "=" in key):
            pairs = split_pairs(key)
            if pairs is not None:
                for k, v in pairs.items():
                    out.setdefault(k, v)
                continue
        if isinstance(key, str) and isinstance(value, str) and "," in value and ":" in value:
            # `backbone: vjepa2, epochs: 40` read as one key whose value holds the others
            pairs = split_pairs(f"{key}: {value}")
            if pairs is not None and len(pairs) > 1:
                for k, v in pairs.items():
                    out.setdefault(k, v)
                continue
        out[key] = value
    return out


def unflatten_lines(block: str) -> str:
    """Rewrite lines holding several `key: value` pairs ('- lr: 3e-4, epochs: 10') one pair a line,
    which is what the model meant; other lines are left as they are."""
    out = []
    for line in block.splitlines():
        m = re.match(r"^(\s*)(-\s+)?(.*)$", line)
        indent, dash, rest = m.group(1), m.group(2) or "", m.group(3)
        pairs = split_pairs(rest) if "," in rest or ";" in rest else None
        if not pairs or len(pairs) < 2:
            out.append(line)
            continue
        first = True
        for k, v in pairs.items():
            lead = indent + dash if first else indent + " " * len(dash)
            out.append(f"{lead}{k}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
            first = False
    return "\n".join(out)


def _as_ideas(doc: Any) -> list[Any] | None:
    if isinstance(doc, dict) and set(doc) == {"ideas"}:
        doc = doc["ideas"]
    if isinstance(doc, dict):
        return [doc]
    if isinstance(doc, list):
        return doc
    if isinstance(doc, str) and split_pairs(doc) is not None:
        return [doc]
    return None


def _candidates(text: str) -> list[str]:
    blocks = [m.group(2) for m in _FENCE.finditer(text)
              if m.group(1).lower() in ("", "yaml", "yml", "json")]
    if blocks:
        return blocks
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _YAMLISH.match(ln)), None)
    if start is None:
        return [text]
    # bare YAML after a line of prose: keep the run of YAML-looking/indented lines
    end = start
    for i in range(start, len(lines)):
        ln = lines[i]
        if ln.strip() == "" or _YAMLISH.match(ln) or ln.startswith((" ", "\t")):
            end = i
        else:
            break
    return ["\n".join(lines[start:end + 1])]


def parse_reply(text: str) -> ParsedReply:
    result = ParsedReply()
    if not text or not text.strip():
        result.errors.append("the reply was empty; expected a YAML list of ideas")
        return result
    for block in _candidates(text):
        doc, err = _load(block)
        if err:
            doc, err2 = _load(unflatten_lines(block))
            err = err if err2 else None
        if err:
            result.errors.append(err)
            continue
        ideas = _as_ideas(doc)
        if ideas is None and (doc is None or isinstance(doc, str)):
            result.errors.append("no YAML ideas found in the reply; expected a list of idea mappings")
            continue
        if ideas is None:
            result.errors.append("expected a YAML list of idea mappings (or {ideas: [...]}), got "
                                 f"{type(doc).__name__}")
            continue
        result.ideas.extend(repair_idea(i) for i in ideas)
    if not result.ideas and not result.errors:
        result.errors.append("no ideas found in the reply; expected a YAML list of idea mappings")
    return result
