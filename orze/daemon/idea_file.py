"""Parsing an idea file's text into its ideas, bounded, one verdict per idea.

Contract of `parse_ideas(text, source, limits)`:
- YAML is parsed with PyYAML's safe constructors only (a `!!python` tag is an error).
- The document is composed into a node graph first, counting every node as it would be once
  aliases are expanded (an alias counts the whole subtree it names): over
  `admission.max_yaml_nodes` the file is refused at once, so a few hundred bytes of alias bomb
  cost a few kilobytes, not gigabytes; nesting deeper than `admission.max_yaml_depth` and an alias
  that refers to itself are refused the same way. These, invalid YAML, an empty file and more than
  `admission.max_ideas_per_file` ideas raise `FileRejected` (the whole file).
- Each idea (the root mapping, or each item of a root list) is then judged on its own: a key given
  twice in one mapping, an integer too large for a float, or a non-finite float (.nan, .inf) makes
  an error naming its field and line, and only that idea is rejected; its siblings are not.
- Every `ParsedIdea` carries `excerpt`: its own source text, which a rejection record keeps.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from orze.config import AdmissionConfig

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_SEQ = "tag:yaml.org,2002:seq"
# An integer literal longer than this cannot fit a float whatever its base; refused before int()
# (which would also hit Python's 4300-digit conversion limit) is ever called on it.
_MAX_INT_CHARS = 400


class FileRejected(ValueError):
    """The whole file is refused; the message names the file and what is allowed."""


class _TooComplex(Exception):
    pass


@dataclass
class ParsedIdea:
    value: Any = None
    errors: list[str] = field(default_factory=list)
    excerpt: str = ""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer counts nodes with aliases expanded and bounds nesting."""

    def __init__(self, text: str, max_nodes: int, max_depth: int):
        super().__init__(text)
        self._max_nodes, self._max_depth = max_nodes, max_depth
        self._total = 0
        self._depth = 0
        self._expanded: dict[int, int] = {}   # id(node) -> its node count with aliases expanded

    def _count(self, n: int, mark: Any) -> None:
        self._total += n
        if self._total > self._max_nodes:
            raise _TooComplex(f"more than {self._max_nodes} YAML nodes once aliases are expanded "
                              f"(at line {mark.line + 1}); at most admission.max_yaml_nodes")

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._expanded.get(id(target))
                if size is None:   # the anchor is still being composed: the alias is inside it
                    raise _TooComplex(f"alias *{event.anchor} at line {event.start_mark.line + 1} "
                                      f"refers to itself; a recursive structure is not an idea")
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > self._max_depth:
            raise _TooComplex(f"nested deeper than {self._max_depth} levels (at line "
                              f"{self.peek_event().start_mark.line + 1}); at most admission.max_yaml_depth")
        before = self._total
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._count(1, node.start_mark)
        self._expanded[id(node)] = self._total - before
        return node


def parse_ideas(text: str, source: str, limits: AdmissionConfig) -> list[ParsedIdea]:
    """The ideas in one file's text; see the module docstring for the contract."""
    try:
        loader = _BoundedLoader(text, limits.max_yaml_nodes, limits.max_yaml_depth)
    except yaml.YAMLError as e:   # the reader refuses control characters at once
        raise FileRejected(f"{source}: not valid YAML: {str(e)[:300]}") from None
    try:
        try:
            root = loader.get_single_node()
        except _TooComplex as e:
            raise FileRejected(f"{source}: {e}") from None
        except yaml.YAMLError as e:
            raise FileRejected(f"{source}: not valid YAML: {str(e)[:300]}") from None
        except RecursionError:
            raise FileRejected(f"{source}: nested too deeply to be an idea file") from None
        if root is None or (isinstance(root, ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
            raise FileRejected(f"{source}: empty file; expected an idea (a mapping) or a list of ideas")
        items = root.value if isinstance(root, SequenceNode) and root.tag == _SEQ else [root]
        if not items:
            raise FileRejected(f"{source}: an empty list; expected at least one idea")
        if len(items) > limits.max_ideas_per_file:
            raise FileRejected(f"{source}: {len(items)} ideas; at most {limits.max_ideas_per_file} per file "
                               f"(admission.max_ideas_per_file)")
        return [_one(loader, node, text) for node in items]
    finally:
        loader.dispose()


def _one(loader: _BoundedLoader, node: Node, text: str) -> ParsedIdea:
    idea = ParsedIdea(excerpt=text[node.start_mark.index:node.end_mark.index])
    idea.errors = node_problems(loader, node)
    if idea.errors:
        return idea
    try:
        idea.value = loader.construct_document(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as e:
        idea.errors.append(f"not valid YAML: {str(e)[:300]}")
    return idea


def node_problems(loader: yaml.SafeLoader, root: Node) -> list[str]:
    """Duplicate keys, oversized integers and non-finite floats in one idea's node tree, each
    naming its field (a dotted path) and line. The walk is bounded: the composer already
    refused a tree over max_yaml_nodes, aliases expanded."""
    problems: list[str] = []
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        where = f"{path or 'the idea'} (line {node.start_mark.line + 1})"
        if isinstance(node, MappingNode):
            seen: dict[tuple[str, str], int] = {}   # (tag, text) of a key -> its first line
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag == _MERGE:
                    stack.append((value, path))
                    continue
                name = key.value if isinstance(key, ScalarNode) else "?"
                line = key.start_mark.line + 1
                if isinstance(key, ScalarNode):
                    if (key.tag, key.value) in seen:
                        problems.append(f"{_join(path, name)}: given twice (lines {seen[key.tag, key.value]} "
                                        f"and {line}); a field may appear once per mapping")
                    seen.setdefault((key.tag, key.value), line)
                stack.append((value, _join(path, name)))
        elif isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        elif node.tag == _INT:
            problems.extend(_int_problem(loader, node, where))
        elif node.tag == _FLOAT:
            problems.extend(_float_problem(loader, node, where))
    return problems


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _int_problem(loader: yaml.SafeLoader, node: ScalarNode, where: str) -> list[str]:
    digits = node.value.lstrip("+-").replace("_", "")
    if len(digits) > _MAX_INT_CHARS:
        return [f"{where}: an integer of {len(digits)} digits is too large; numbers must fit a float "
                f"(at most about {sys.float_info.max:.1e})"]
    try:
        value = loader.construct_yaml_int(node)
    except ValueError:
        return [f"{where}: {node.value[:40]!r} is not a valid integer"]
    if abs(value) > sys.float_info.max:
        return [f"{where}: {node.value[:40]} is too large; numbers must fit a float "
                f"(at most about {sys.float_info.max:.1e})"]
    return []


def _float_problem(loader: yaml.SafeLoader, node: ScalarNode, where: str) -> list[str]:
    try:
        value = loader.construct_yaml_float(node)
    except (ValueError, OverflowError):
        return [f"{where}: {node.value[:40]!r} is not a valid number"]
    if not math.isfinite(value):
        return [f"{where}: {node.value[:40]} is not a finite number; allowed: finite numbers only"]
    return []
