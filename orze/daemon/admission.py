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
- Only regular files are read (orze/store/safe_read.py: never through a link, never a FIFO or a
  device, size checked before reading, bounded read). Any other entry (link, FIFO, directory,
  device, a hard link to some other file) is renamed, itself, into runs/quarantine/ with a record in runs/rejected/; an entry that
  cannot be moved is reported once and skipped, never blocking the entries after it.
- Parsing is bounded (orze/daemon/idea_file.py): alias bombs, deep nesting and oversized files
  reject the file; duplicate keys and oversized or non-finite numbers reject only their idea.
- A rejection record keeps only the first `admission.record_excerpt_bytes` of what was given. Its
  name derives from the file's identity (device, inode, mtime) and the idea's index, so a file
  re-processed after a crash never writes a record (or emits its event) twice.
- Dot-files are never taken (a submitter's temp file is `.NAME.tmp` until renamed); one older than
  `admission.stray_dotfile_s` is reported once, as is a name that is not `*.yaml`/`*.yml`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orze.config import AdmissionConfig
from orze.daemon.idea_file import FileRejected, parse_ideas
from orze.daemon.inbox_scan import IDEA_SUFFIXES, InboxScanner
from orze.daemon.stores import existing_stores, missing_store_reason
from orze.ids import new_id
from orze.layout import Layout
from orze.safe_text import printable
from orze.space import Space, check_idea, fingerprint
from orze.store import queue
from orze.store.atomic import read_json_or_none
from orze.store.safe_read import EntryInfo, Unsafe, inspect, read_regular
from orze.store.transitions import Transitions
from orze.vocab import EntryKind

log = logging.getLogger(__name__)

__all__ = ["IDEA_SUFFIXES", "AdmissionReport", "Admitter", "FileRejected"]


@dataclass
class AdmissionReport:
    files: int = 0
    admitted: list[str] = field(default_factory=list)
    rejected: int = 0
    duplicates: int = 0
    near_duplicates: int = 0
    messages: list[str] = field(default_factory=list)


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
        self._scanner: InboxScanner | None = None
        self._stuck: set[str] = set()   # entries in the admitting area that cannot be moved out

    # --- inbox -------------------------------------------------------------------------------
    @property
    def scanner(self) -> InboxScanner:
        if self._scanner is None:
            self._scanner = InboxScanner(self.layout.inbox, self.layout.admitting_for(self.node),
                                         self.cfg.stray_dotfile_s)
        return self._scanner

    def _leftovers(self) -> list[Path]:
        """Entries this node took and has not finished (a crash), except those it cannot move."""
        try:
            names = os.listdir(self.layout.admitting_for(self.node))
        except FileNotFoundError:
            return []
        return [self.layout.admitting_for(self.node) / n for n in sorted(names)
                if n.endswith(IDEA_SUFFIXES) and not n.startswith(".") and n not in self._stuck]

    def pending(self) -> bool:
        """Whether any inbox file waits (or one this node took and has not finished); entries
        reported as impossible to take or move do not count."""
        return bool(self._leftovers()) or self.scanner.pending()

    def take_files(self, limit: int = 1000) -> list[Path]:
        """Rename inbox files into this node's admitting area (plus any left from a crash)."""
        taken = self._leftovers()
        busy = {p.name for p in taken} | self._stuck
        return taken + self.scanner.take(limit, busy)

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
                log.exception("admitting %s failed; the file is rejected", printable(path.name, 200))
                try:
                    info = inspect(path)
                except OSError:
                    continue
                self._reject({"file": path.name}, [f"{path.name}: could not be admitted: "
                                                   f"{type(e).__name__}: {str(e)[:300]}"], path.name, None,
                             info=info)
                report.rejected += 1
                report.messages.append(f"{path.name}: rejected ({type(e).__name__})")
                self._archive(path)
        return report

    def admit_file(self, path: Path, report: AdmissionReport) -> None:
        report.files += 1
        name, cap = path.name, self.cfg.record_excerpt_bytes
        try:
            data, info = read_regular(path, self.cfg.max_file_bytes, cap)
        except FileNotFoundError:
            return  # vanished (another process removed it): nothing to admit
        except Unsafe as e:
            if e.info.kind != EntryKind.FILE or e.info.nlink > 1:   # not a file of its own: set aside
                self._quarantine(path, e, report)
                return
            self._reject_file(path, e.info, f"{name}: {e.reason}", e.head, report)
            return
        text = data.decode("utf-8", "replace")
        try:
            ideas = parse_ideas(text, name, self.cfg)
        except FileRejected as e:
            self._reject_file(path, info, str(e), data, report)
            return
        for i, idea in enumerate(ideas):
            if idea.errors:
                self._reject(idea.value, idea.errors, name, i, info=info, excerpt=idea.excerpt)
                report.rejected += 1
                report.messages.append(f"{name}#{i + 1}: rejected: {'; '.join(idea.errors)}")
            else:
                self.admit_idea(idea.value, name, i, report, info=info, excerpt=idea.excerpt)
        self._archive(path)

    def _reject_file(self, path: Path, info: EntryInfo, reason: str, given: bytes,
                     report: AdmissionReport) -> None:
        cap = self.cfg.record_excerpt_bytes
        shown = {"file": path.name, "text": _head(given, cap), "bytes": info.size,
                 "truncated": info.size > cap}
        self._reject(shown, [reason], path.name, None, info=info, whole=True)
        report.rejected += 1
        report.messages.append(reason)
        self._archive(path)

    def _quarantine(self, path: Path, refusal: Unsafe, report: AdmissionReport) -> None:
        """Record a non-regular entry, then rename the entry itself (never what it points to)
        into runs/quarantine/; if it cannot be moved, report it once and leave it."""
        info, name = refusal.info, path.name
        record_name = _record_name(info, name, None)
        kind = "hardlink" if info.kind == EntryKind.FILE else str(info.kind)
        dest = self.layout.quarantine / f"{record_name[:-len('.json')]}.{kind}"
        reason = f"{name}: {refusal.reason}; moved to runs/quarantine/{dest.name}"
        self._reject({"file": name, "kind": kind, "moved_to": f"quarantine/{dest.name}"},
                     [reason], name, None, info=info, whole=True)
        report.rejected += 1
        report.messages.append(reason)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, dest)
        except FileNotFoundError:
            pass
        except OSError as e:
            self._stuck.add(name)
            log.warning("admission: cannot move %s (a %s) out of %s: %s; left there and skipped",
                        printable(name, 200), info.kind, path.parent, e.strerror)

    def _archive(self, path: Path) -> None:
        self.layout.admitted.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, self.layout.admitted / path.name)
        except (IsADirectoryError, NotADirectoryError):
            # Something that is not a file holds the name in the archive: keep both.
            os.replace(path, self.layout.admitted / f"{path.name}.{secrets.token_hex(4)}")
        except FileNotFoundError:
            pass

    # --- one idea ----------------------------------------------------------------------------
    def admit_idea(self, raw: Any, source: str, index: int, report: AdmissionReport,
                   info: EntryInfo | None = None, excerpt: str = "") -> str | None:
        """`info`: the identity of the file it came from (names its rejection record, so a
        re-processed file writes none twice); `excerpt`: its source text, kept if it is rejected."""
        check = check_idea(self.space, raw)
        where = f"{source}#{index + 1}"
        if not check.ok:
            self._reject(raw, check.errors, source, index, info=info, excerpt=excerpt)
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
            self._reject(raw, [reason], source, index, info=info, excerpt=excerpt)
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
                               f"fingerprint {fp})"], source, index, duplicate_of=other, info=info,
                         excerpt=excerpt)
            report.duplicates += 1
            report.messages.append(f"{where}: duplicate of run {other}")
            return None
        self._remember(fp, run_id, config)
        if near_of:
            report.near_duplicates += 1
        report.admitted.append(run_id)
        return run_id

    def _reject(self, raw: Any, errors: list[str], source: str, index: int | None,
                duplicate_of: str | None = None, info: EntryInfo | None = None, excerpt: str = "",
                whole: bool = False) -> None:
        """Write the rejection record (once: a record named after this file and index that exists
        was written before a crash). It keeps what was given only up to record_excerpt_bytes."""
        name = _record_name(info, source, index) if info is not None else None
        if name is not None and os.path.lexists(self.layout.rejected / name):
            return
        given = raw if whole else _given(raw, excerpt, self.cfg.record_excerpt_bytes)
        record = {"rejected_at": time.time(), "source": source, "index": index, "errors": errors,
                  "idea": given, "duplicate_of": duplicate_of, "node": self.node}
        self.transitions.reject(_plain(record), name)

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


def _record_name(info: EntryInfo, source: str, index: int | None) -> str:
    """A rejection record's name: the UTC time the file was last written (newest first in a
    reverse listing) and a digest of the file's identity and the idea's index."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(info.mtime_ns / 1e9))
    digest = hashlib.sha256(f"{info.identity}|{source}|{index}".encode("utf-8", "surrogateescape")).hexdigest()
    return f"{stamp}-{digest[:16]}.json"


def _head(data: bytes | str, cap: int) -> str:
    """The first `cap` bytes of what was given, as text (a cut character is dropped)."""
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return raw[:cap].decode("utf-8", "ignore")


def _given(raw: Any, excerpt: str, cap: int) -> Any:
    """What a record keeps of one idea: the idea as parsed if its JSON fits `cap` bytes, else (or
    when it could not be parsed) {"text": the first `cap` bytes of its source text, "bytes",
    "truncated"}."""
    if raw is not None or not excerpt:
        plain = _plain(raw)
        text = json.dumps(plain, default=str)
        if len(text.encode("utf-8", "surrogateescape")) <= cap:
            return plain
    source = excerpt or text
    size = len(source.encode("utf-8", "surrogateescape"))
    return {"text": _head(source, cap), "bytes": size, "truncated": size > cap}
