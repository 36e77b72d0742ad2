"""The dashboard's in-memory index of the leaderboard, kept current from the file's tail.

`RunIndex.refresh()` reads only the bytes appended since the last call (orze.store.leaderboard.Tail)
and folds each new row into: the rows in completion order with an id → position map, parent →
children (genealogy), the distinct values of every filterable field (facets), and the overview's
running figures (best and noise floor via orze.analysis.running, the best-so-far curve, finish
times per status for "in the last hour"). A rebuilt leaderboard (new inode, or shorter) is read
again from the start. `version` changes whenever the rows do; the live stream and the caches key
on it.

`query()` sorts, filters and pages on the server. A sort order and a filter's matching set are
computed once per version and cached (a few of each), so paging through 100,000 rows costs a
slice. The test metric is shown but can be neither sorted nor filtered on: nothing that selects
reads it (docs/architecture.md, Evaluation honesty).
"""

from __future__ import annotations

import bisect
import gc
import math
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orze.analysis.running import RunningBest
from orze.store.leaderboard import Tail

# Row fields offered for sorting and filtering beside the config dimensions (cfg.<name>).
SORT_FIELDS = ("metric", "finished_at", "duration_s", "id", "status", "agent", "source", "node",
               "attempts", "epochs_run")
FILTER_FIELDS = ("status", "agent", "source", "node", "priority", "model")
FACET_LIMIT = 60        # a field with more distinct values gets a text box, not a list
CACHE_ENTRIES = 8


def text(v: Any) -> str:
    """How a value is shown and matched: lists joined by '+' (as `orze leaderboard` does)."""
    if v is None:
        return ""
    if isinstance(v, list):
        return "+".join(map(str, v))
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def field_value(row: dict[str, Any], name: str) -> Any:
    if name.startswith("cfg."):
        v = (row.get("config") or {}).get(name[4:])
        return "+".join(map(str, v)) if isinstance(v, list) else v
    return row.get(name)


def _sort_key(v: Any) -> tuple:
    # Missing values last (in either direction, see query), numbers before text, each in order.
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return (2, 0.0, "")
    if isinstance(v, bool):
        return (1, 0.0, str(v))
    if isinstance(v, (int, float)):
        return (0, float(v), "")
    return (1, 0.0, str(v))


def parse_filter(spec: str) -> Any:
    """'a..b' is a numeric range (either end may be empty); anything else is matched exactly."""
    if ".." in spec:
        lo, _, hi = spec.partition("..")
        try:
            return (float(lo) if lo.strip() else -math.inf, float(hi) if hi.strip() else math.inf)
        except ValueError:
            pass
    return spec


def matches(value: Any, wanted: list[Any]) -> bool:
    """Any of the wanted values (OR); numbers compare numerically, text exactly."""
    for w in wanted:
        if isinstance(w, tuple):
            if isinstance(value, (int, float)) and not isinstance(value, bool) and w[0] <= value <= w[1]:
                return True
            continue
        if text(value) == w:
            return True
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                if math.isclose(float(w), float(value), rel_tol=1e-9, abs_tol=1e-15):
                    return True
            except ValueError:
                pass
    return False


@dataclass
class Query:
    sort: str = "metric"
    desc: bool = True
    filters: dict[str, list[str]] = field(default_factory=dict)   # field -> accepted values (OR)
    page: int = 1
    per_page: int = 50

    def key(self) -> tuple:
        return tuple(sorted((k, tuple(v)) for k, v in self.filters.items() if v))


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int          # rows matching the filters
    page: int
    pages: int
    version: int


class QueryError(ValueError):
    """A sort or filter field that does not exist (the message names it and what is allowed)."""


def _insert_at(keys: list[tuple], idx: list[int], k: tuple) -> int:
    """Where (key, position) goes in the ascending order (ties by position, as sorted() leaves them)."""
    lo = bisect.bisect_left(keys, k[0])
    hi = bisect.bisect_right(keys, k[0], lo)
    return lo + bisect.bisect_right(idx[lo:hi], k[1]) if hi > lo else lo


class RunIndex:
    def __init__(self, path: Path, min_interval_s: float = 0.2):
        self.path = Path(path)
        self.min_interval_s = min_interval_s
        self._lock = threading.RLock()
        self._last_poll = -math.inf
        self._reset()

    def _reset(self) -> None:
        self._tail = Tail(self.path)
        self.rows: list[dict[str, Any]] = []
        self.pos: dict[str, int] = {}
        self.children: dict[str, list[str]] = {}
        self.facets: defaultdict[str, Counter] = defaultdict(Counter)
        self.config_dims: set[str] = set()
        self._wide: set[str] = set()     # config dimensions with more than FACET_LIMIT values
        self.version = 0
        self.best = RunningBest()
        self.curve: list[tuple[int, float]] = []             # (row position, best so far) at each new best
        self.finish_times: dict[str, list[float]] = {}        # status -> sorted finished_at
        self.first_start: float | None = None
        self.changed_at = time.time()
        self._sorted: OrderedDict[str, tuple[list[tuple], list[int]]] = OrderedDict()
        self._filtered: OrderedDict[tuple, list[int]] = OrderedDict()

    # --- reading -----------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> bool:
        """Fold in what was appended since the last call; True when the rows changed."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last_poll < self.min_interval_s:
                return False
            self._last_poll = now
            inode, offset = self._tail.inode, self._tail.offset
            self._tail.poll()
            if inode is not None and (self._tail.inode != inode or self._tail.offset < offset):
                self._reset()           # rebuilt: read it again from the start
                self._tail.poll()
                self._last_poll = now
            new, self._tail.unread = self._tail.unread, []
            if not new:
                return False
            start, replaced = len(self.rows), False
            gc_was = gc.isenabled()
            gc.disable()   # 100,000 parsed rows are acyclic; the collector would only rescan them
            try:
                for row in new:
                    replaced |= self._add(row)
            finally:
                if gc_was:
                    gc.enable()
            self.version += 1
            self.changed_at = time.time()
            if replaced:
                self._sorted.clear()
                self._filtered.clear()
            else:
                self._extend_caches(start)
            return True

    def _add(self, row: dict[str, Any]) -> bool:
        rid = str(row.get("id"))
        if rid in self.pos:           # a re-appended id (never by the daemon): the later row wins
            self.rows[self.pos[rid]] = row
            return True
        i = len(self.rows)
        self.rows.append(row)
        self.pos[rid] = i
        parent = row.get("parent")
        if parent:
            self.children.setdefault(str(parent), []).append(rid)
        facets, wide = self.facets, self._wide
        for f in FILTER_FIELDS:
            v = row.get(f)
            facets[f][v if type(v) is str else text(v)] += 1
        for k, v in (row.get("config") or {}).items():
            if k in wide:
                continue   # a continuous dimension: filtered by a range, no list of values
            c = facets["cfg." + k]
            if not c:
                self.config_dims.add(k)
            c[v if type(v) is str else text(v)] += 1
            if len(c) > FACET_LIMIT:
                wide.add(k)
        if self.best.add(row) is not None:
            self.curve.append((i, self.best.best_metric))
        t = row.get("finished_at")
        if isinstance(t, (int, float)):
            bisect.insort(self.finish_times.setdefault(str(row.get("status")), []), float(t))
        s = row.get("started_at")
        if isinstance(s, (int, float)):
            self.first_start = s if self.first_start is None else min(self.first_start, s)
        return False

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self._lock:
            i = self.pos.get(run_id)
            return None if i is None else self.rows[i]

    # --- figures -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self.facets.get("status", Counter()).items()}

    def finished_since(self, status: str, since: float) -> int:
        times = self.finish_times.get(status, [])
        return len(times) - bisect.bisect_left(times, since)

    def throughput(self, now: float, window_s: float = 3600.0) -> dict[str, float]:
        """Experiments per hour, as orze.status.throughput computes it (recent window, overall)."""
        with self._lock:
            times = [t for ts in self.finish_times.values() for t in (ts[0], ts[-1]) if ts]
            n = sum(len(ts) for ts in self.finish_times.values())
            if not n:
                return {"recent_per_hour": 0.0, "overall_per_hour": 0.0}
            recent = sum(self.finished_since(s, now - window_s) for s in self.finish_times)
            first, last = min(times), max(times)
            span = max(last - (self.first_start if self.first_start is not None else first), 1.0)
            return {"recent_per_hour": recent * 3600.0 / window_s, "overall_per_hour": n * 3600.0 / span}

    def facet_options(self) -> dict[str, list[str] | None]:
        """Per filterable field: its values (most common first), or None where there are too many."""
        with self._lock:
            out: dict[str, list[str] | None] = {}
            for f in (*FILTER_FIELDS, *sorted("cfg." + d for d in self.config_dims)):
                c = self.facets.get(f, Counter())
                out[f] = None if len(c) > FACET_LIMIT else sorted(c, key=lambda v: (-c[v], v))
            return out

    def fields(self) -> tuple[list[str], list[str]]:
        dims = sorted("cfg." + d for d in self.config_dims)
        return [*SORT_FIELDS, *dims], [*FILTER_FIELDS, *dims]

    # --- querying ----------------------------------------------------------------------------
    def query(self, q: Query) -> Page:
        with self._lock:
            sortable, filterable = self.fields()
            if q.sort not in sortable:
                raise QueryError(f"sort: unknown field {q.sort!r} (allowed: {', '.join(sortable)})")
            for f in q.filters:
                if f not in filterable and f not in self.facets:
                    raise QueryError(f"filter: unknown field {f!r} (allowed: {', '.join(filterable)})")
            order = self._order(q.sort, q.desc)
            fkey = q.key()
            if fkey:
                keep = self._matching(fkey)
                order = [i for i in order if keep[i]] if keep is not None else order
            total = len(order)
            per = max(1, min(q.per_page, 500))
            pages = max(1, math.ceil(total / per))
            page = min(max(1, q.page), pages)
            sel = order[(page - 1) * per: page * per]
            return Page([self.rows[i] for i in sel], total, page, pages, self.version)

    def _order(self, sort: str, desc: bool) -> list[int]:
        """Row positions in sort order; missing values last in either direction."""
        keys, idx = self._ascending(sort)
        if not desc:
            return idx
        first_missing = bisect.bisect_left(keys, (2,))
        return idx[first_missing - 1::-1] + idx[first_missing:] if first_missing else list(idx)

    def _ascending(self, sort: str) -> tuple[list[tuple], list[int]]:
        hit = self._sorted.get(sort)
        if hit is not None:
            self._sorted.move_to_end(sort)
            return hit
        pairs = sorted((_sort_key(field_value(r, sort)), i) for i, r in enumerate(self.rows))
        hit = ([k for k, _ in pairs], [i for _, i in pairs])
        self._sorted[sort] = hit
        if len(self._sorted) > CACHE_ENTRIES:
            self._sorted.popitem(last=False)
        return hit

    def _extend_caches(self, start: int) -> None:
        """New rows from position `start` on: insert them into every cached order and filter, so
        a page after an append costs what a page before it did (no re-sort of 100,000 rows)."""
        for sort, (keys, idx) in self._sorted.items():
            for i in range(start, len(self.rows)):
                k = (_sort_key(field_value(self.rows[i], sort)), i)
                at = _insert_at(keys, idx, k)
                keys.insert(at, k[0])
                idx.insert(at, i)
        for fkey, keep in self._filtered.items():
            wanted = [(name, [parse_filter(v) for v in values]) for name, values in fkey]
            keep.extend(all(matches(field_value(r, name), w) for name, w in wanted)
                        for r in self.rows[start:])

    def _matching(self, fkey: tuple) -> list[bool] | None:
        hit = self._filtered.get(fkey)
        if hit is not None:
            self._filtered.move_to_end(fkey)
            return hit
        wanted = [(name, [parse_filter(v) for v in values]) for name, values in fkey]
        keep = [all(matches(field_value(r, name), w) for name, w in wanted) for r in self.rows]
        self._filtered[fkey] = keep
        if len(self._filtered) > CACHE_ENTRIES:
            self._filtered.popitem(last=False)
        return keep
