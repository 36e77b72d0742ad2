"""Admission: inbox file → validate → canonicalise → fingerprint → dedup → queue (or rejected).

Contract:
- A daemon takes an inbox file by renaming it into runs/admitting/<node>/; exactly one daemon wins.
- Each idea in it is validated against the space; a rejected idea is written to runs/rejected/
  with the reasons (naming the field and what is allowed) and the idea as given; never dropped.
- Exact duplicates are refused by creating runs/fingerprints/<fp> exclusively; the refusal names
  the run it duplicates. The fingerprint, queue entry and rejection record are written by
  orze.store.transitions (admit, reject), which emit the events. Near-duplicates (same discrete
  cell, continuous values within a relative tolerance) are flagged or refused as configured.
- Re-processing a file after a crash is idempotent: an idea whose fingerprint was created by this
  very file and index is recognised as already admitted, not as a duplicate.
- When every idea of a file is settled the file moves to runs/admitted/.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orze.config import AdmissionConfig
from orze.daemon.stores import existing_stores, missing_store_reason
from orze.ids import new_id
from orze.layout import Layout
from orze.space import Space, check_idea, fingerprint
from orze.store import queue
from orze.store.atomic import read_json_or_none
from orze.store.transitions import Transitions

IDEA_SUFFIXES = (".yaml", ".yml")


@dataclass
class AdmissionReport:
    files: int = 0
    admitted: list[str] = field(default_factory=list)
    rejected: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    messages: list[str] = field(default_factory=list)


class FileRejected(ValueError):
    pass


def parse_idea_text(text: str, source: str, limits: AdmissionConfig) -> list[Any]:
    """The ideas in one file: a mapping (one idea) or a list of them. safe_load only."""
    if len(text.encode("utf-8", "replace")) > limits.max_file_bytes:
        raise FileRejected(f"{source}: {len(text)} bytes; at most {limits.max_file_bytes} per idea file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise FileRejected(f"{source}: not valid YAML: {str(e)[:300]}") from None
    except RecursionError:
        raise FileRejected(f"{source}: nested too deeply to be an idea file") from None
    if data is None:
        raise FileRejected(f"{source}: empty file; expected an idea (a mapping) or a list of ideas")
    ideas = data if isinstance(data, list) else [data]
    if not ideas:
        raise FileRejected(f"{source}: an empty list; expected at least one idea")
    if len(ideas) > limits.max_ideas_per_file:
        raise FileRejected(f"{source}: {len(ideas)} ideas; at most {limits.max_ideas_per_file} per file")
    return ideas


def near_key(space: Space, config: dict[str, Any]) -> tuple:
    """The discrete cell of a config (its categorical and discrete-valued dimensions)."""
    return tuple((n, json.dumps(config.get(n))) for n, d in space.dimensions.items() if d.is_discrete)


def near_distance(space: Space, a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest relative difference over continuous dims (log-ranged ones compared in log space)."""
    worst = 0.0
    for n, d in space.dimensions.items():
        if d.is_discrete or n not in a or n not in b or not d.search:
            continue
        x, y = float(a[n]), float(b[n])
        if d.log:
            span = math.log(d.high) - math.log(d.low)
            diff = abs(math.log(max(x, 1e-300)) - math.log(max(y, 1e-300))) / span
        else:
            span = (d.high - d.low) or 1.0
            diff = abs(x - y) / span
        worst = max(worst, diff)
    return worst


class Admitter:
    """Admits inbox files for one node. Holds an incremental index of known fingerprints for
    near-duplicate checks (exact dedup never depends on it: the exclusive create decides)."""

    def __init__(self, layout: Layout, space: Space, cfg: AdmissionConfig, node: str,
                 transitions: Transitions | None = None):
        self.layout, self.space, self.cfg, self.node = layout, space, cfg, node
        self.transitions = transitions or Transitions(layout, node)
        self._cells: dict[tuple, list[tuple[str, dict[str, Any]]]] = {}
        self._seen: set[str] = set()
        self._indexed = False

    # --- inbox -------------------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether any inbox file waits (or one this node took and has not finished)."""
        try:
            return any(not n.startswith(".") for n in os.listdir(self.layout.inbox)) or \
                any(self.layout.admitting_for(self.node).iterdir())
        except FileNotFoundError:
            return False

    def take_files(self, limit: int = 1000) -> list[Path]:
        """Rename inbox files into this node's admitting area (plus any left from a crash)."""
        mine = self.layout.admitting_for(self.node)
        mine.mkdir(parents=True, exist_ok=True)
        taken = sorted(p for p in mine.iterdir() if p.suffix in IDEA_SUFFIXES)
        try:
            names = sorted(n for n in os.listdir(self.layout.inbox)
                           if not n.startswith(".") and n.endswith(IDEA_SUFFIXES))
        except FileNotFoundError:
            names = []
        for n in names[:limit]:
            try:
                os.rename(self.layout.inbox / n, mine / n)
            except FileNotFoundError:
                continue  # another daemon won this file
            taken.append(mine / n)
        return taken

    def take_one(self, path: Path) -> Path | None:
        """Take one given inbox file (`orze submit` admits its own file at once)."""
        mine = self.layout.admitting_for(self.node)
        mine.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(path, mine / path.name)
        except FileNotFoundError:
            return None  # a daemon took it first; it will admit it
        return mine / path.name

    def admit_pending(self) -> AdmissionReport:
        report = AdmissionReport()
        files = self.take_files()
        if files and self.cfg.near_duplicates != "off":
            # One listing of runs/fingerprints per pass (not per idea): other nodes' admissions
            # since the last pass join the near-duplicate index; exact dedup never depends on it.
            self._refresh_index()
        for path in files:
            try:
                self.admit_file(path, report)
            except OSError:
                raise  # disk or mount trouble: the daemon reports it and retries the file later
            except Exception as e:  # never let one agent's file take the daemon down
                self._reject({"file": path.name}, [f"{path.name}: could not be admitted: "
                                                   f"{type(e).__name__}: {str(e)[:300]}"], path.name, None)
                report.rejected += 1
                report.messages.append(f"{path.name}: rejected ({type(e).__name__})")
                os.makedirs(self.layout.admitted, exist_ok=True)
                os.replace(path, self.layout.admitted / path.name)
        return report

    def admit_file(self, path: Path, report: AdmissionReport) -> None:
        report.files += 1
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
            ideas = parse_idea_text(text, path.name, self.cfg)
        except FileRejected as e:
            self._reject({"file": path.name, "text": text[:20000] if "text" in locals() else None},
                         [str(e)], path.name, None)
            report.rejected += 1
            report.messages.append(str(e))
        else:
            for i, raw in enumerate(ideas):
                self.admit_idea(raw, path.name, i, report)
        os.makedirs(self.layout.admitted, exist_ok=True)
        os.replace(path, self.layout.admitted / path.name)

    # --- one idea ----------------------------------------------------------------------------
    def admit_idea(self, raw: Any, source: str, index: int, report: AdmissionReport) -> str | None:
        check = check_idea(self.space, raw)
        where = f"{source}#{index + 1}"
        if not check.ok:
            self._reject(raw, check.errors, source, index)
            report.rejected += 1
            report.messages.append(f"{where}: rejected: {'; '.join(check.errors)}")
            return None
        config = check.config
        # issue 19: an idea whose backbone has no feature store would fail at run time, one run each
        missing = missing_store_reason(config, existing_stores(self.layout)) if self.cfg.require_feature_store else None
        if missing:
            self._reject(raw, [missing], source, index)
            report.rejected += 1
            report.messages.append(f"{where}: rejected: {missing}")
            return None
        fp = fingerprint(config)
        near_of = self._near_duplicate(config)
        if near_of and self.cfg.near_duplicates == "refuse":
            reason = (f"near-duplicate of run {near_of} (same discrete cell, continuous values within "
                      f"{self.cfg.near_tolerance:g} of the range)")
            self._reject(raw, [reason], source, index)
            report.near_duplicates += 1
            report.messages.append(f"{where}: {reason}")
            return None
        run_id = new_id()
        marker = {"id": run_id, "source": source, "index": index, "config": config}
        entry = queue.Entry(id=run_id, fingerprint=fp, config=config, meta=check.meta,
                            admitted_at=time.time(), source_file=source, near_duplicate_of=near_of)
        admitted = self.transitions.admit(entry, marker)
        if admitted.existing is not None:
            existing = admitted.existing
            if existing.get("source") == source and existing.get("index") == index:
                return existing.get("id")  # this file was half-admitted before a crash
            other = existing.get("id", "?")
            self._reject(raw, [f"duplicate of run {other} (identical canonical configuration, "
                               f"fingerprint {fp})"], source, index, duplicate_of=other)
            report.duplicates += 1
            report.messages.append(f"{where}: duplicate of run {other}")
            return None
        self._remember(fp, run_id, config)
        if near_of:
            report.near_duplicates += 1
        report.admitted.append(run_id)
        return run_id

    def _reject(self, raw: Any, errors: list[str], source: str, index: int | None,
                duplicate_of: str | None = None) -> None:
        record = {"rejected_at": time.time(), "source": source, "index": index, "errors": errors,
                  "idea": raw, "duplicate_of": duplicate_of, "node": self.node}
        self.transitions.reject(_plain(record))

    # --- near-duplicate index ------------------------------------------------------------------
    def _refresh_index(self) -> None:
        self._indexed = True
        try:
            names = os.listdir(self.layout.fingerprints)
        except FileNotFoundError:
            return
        for n in names:
            if n in self._seen or n.startswith("."):
                continue
            data = read_json_or_none(self.layout.fingerprints / n) or {}
            if "config" in data:
                self._remember(n, data.get("id", "?"), data["config"])

    def _remember(self, fp: str, run_id: str, config: dict[str, Any]) -> None:
        self._seen.add(fp)
        self._cells.setdefault(near_key(self.space, config), []).append((run_id, config))

    def _near_duplicate(self, config: dict[str, Any]) -> str | None:
        if self.cfg.near_duplicates == "off":
            return None
        if not self._indexed:
            self._refresh_index()
        for run_id, other in self._cells.get(near_key(self.space, config), []):
            if other != config and near_distance(self.space, config, other) <= self.cfg.near_tolerance:
                return run_id
        return None


def _plain(obj: Any) -> Any:
    """Make an arbitrary YAML-loaded value JSON-safe (dates, sets, odd keys) without losing it."""
    return json.loads(json.dumps(obj, default=str, skipkeys=False)) if _json_ok(obj) else repr(obj)


def _json_ok(obj: Any) -> bool:
    try:
        json.dumps(obj, default=str)
        return True
    except (TypeError, ValueError):
        return False
