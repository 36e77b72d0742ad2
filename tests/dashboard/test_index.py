"""The leaderboard index: server-side sort, filter and paging agree with a brute-force reading of
the file, stay correct as rows are appended (cached orders are extended, not rebuilt), and start
over when the file is rebuilt."""

import math
import random

import pytest

from orze.analysis.synthetic import synthetic_rows, write_leaderboard
from orze.dashboard.index import Query, QueryError, RunIndex, field_value, text
from orze.status import throughput
from orze.store.atomic import atomic_write_text
from orze.store.leaderboard import iter_rows, row_line


def rows_with_variety(n, seed=0):
    rows = synthetic_rows(n, seed=seed)
    rng = random.Random(seed)
    for i, r in enumerate(rows):
        if i % 7 == 3:
            r.update(status="failed", metric=None, error={"class": "oom"})
        if i % 11 == 5:
            r.update(status="misconfigured", error={"class": "misconfigured", "findings": ["x"]})
        if i % 13 == 0:
            r["config"]["backbone"] = ["siglip2", "vjepa2"]
        r["source"] = rng.choice(["llm", "sweep", "human"])
        if i > 5 and i % 9 == 0:
            r["parent"] = rows[i - 4]["id"]
    return rows


def brute(rows, q: Query):
    from orze.dashboard.index import _sort_key, matches, parse_filter
    keep = [r for r in rows if all(matches(field_value(r, f), [parse_filter(v) for v in vs])
                                   for f, vs in q.filters.items())]
    present = [r for r in keep if _sort_key(field_value(r, q.sort))[0] != 2]
    missing = [r for r in keep if _sort_key(field_value(r, q.sort))[0] == 2]
    pos = {r["id"]: i for i, r in enumerate(rows)}
    present.sort(key=lambda r: (_sort_key(field_value(r, q.sort)), pos[r["id"]]), reverse=q.desc)
    missing.sort(key=lambda r: pos[r["id"]])
    ordered = present + missing
    return ordered[(q.page - 1) * q.per_page: q.page * q.per_page], len(keep)


QUERIES = [Query(), Query(sort="metric", desc=False), Query(sort="cfg.learning_rate", desc=False, page=3),
           Query(sort="agent", desc=True, page=2), Query(sort="cfg.backbone"),
           Query(filters={"status": ["failed"]}, sort="id", desc=False),
           Query(filters={"cfg.backbone": ["siglip2+vjepa2"]}),
           Query(filters={"cfg.learning_rate": ["1e-4..1e-3"], "agent": ["claude"]}, sort="cfg.learning_rate"),
           Query(filters={"source": ["sweep", "human"], "cfg.pooling": ["mean"]}, page=2, per_page=7),
           Query(filters={"cfg.focal_gamma": ["2..", ""]}, sort="cfg.focal_gamma", desc=True)]


@pytest.fixture
def board(tmp_path):
    rows = rows_with_variety(600)
    path = tmp_path / "leaderboard.jsonl"
    write_leaderboard(path, rows[:500])
    return path, rows


def test_queries_match_brute_force_and_survive_appends(board):
    path, rows = board
    ix = RunIndex(path)
    ix.refresh(force=True)
    for q in QUERIES:
        q.filters = {k: [v for v in vs if v] for k, vs in q.filters.items()}
        page = ix.query(q)
        want, total = brute(rows[:500], q)
        assert [r["id"] for r in page.rows] == [r["id"] for r in want], q
        assert page.total == total
    v = ix.version
    with open(path, "ab") as f:
        for r in rows[500:]:
            f.write(row_line(r))
        f.write(b'{"id": "torn", "status"')          # a writer mid-append: not read yet
    assert ix.refresh(force=True) and ix.version == v + 1
    for q in QUERIES:                                  # the cached orders were extended in place
        page = ix.query(q)
        want, total = brute(rows, q)
        assert [r["id"] for r in page.rows] == [r["id"] for r in want], q
        assert page.total == total
    assert "torn" not in ix.pos


def test_unknown_fields_are_named(board):
    path, _ = board
    ix = RunIndex(path)
    ix.refresh(force=True)
    with pytest.raises(QueryError, match="test_metric"):
        ix.query(Query(sort="test_metric"))            # reported, never used to select
    with pytest.raises(QueryError, match="cfg.nope"):
        ix.query(Query(filters={"cfg.nope": ["1"]}))


def test_figures_genealogy_and_rebuild(board, tmp_path):
    path, rows = board
    ix = RunIndex(path)
    ix.refresh(force=True)
    first = rows[:500]
    ranked = sorted((r for r in first if r["status"] == "done"), key=lambda r: (-r["metric"], r["id"]))
    assert ix.best.best["id"] == ranked[0]["id"]
    assert ix.counts() == {s: sum(r["status"] == s for r in first) for s in ("done", "failed", "misconfigured")}
    now = first[-1]["finished_at"] + 100
    want = throughput(list(iter_rows(path)), now=now)
    got = ix.throughput(now)
    assert all(math.isclose(got[k], want[k]) for k in want)
    parent = next(r["parent"] for r in first if r.get("parent"))
    assert ix.children[parent] == [r["id"] for r in first if r.get("parent") == parent]
    curve = [b for _, b in ix.curve]
    assert curve == sorted(curve) and curve[-1] == ranked[0]["metric"]
    # `orze leaderboard --rebuild` writes a new file (new inode): the index starts over
    atomic_write_text(path, "".join(row_line(r).decode() for r in rows[:10]))
    assert ix.refresh(force=True)
    assert len(ix.rows) == 10 and ix.query(Query(per_page=100)).total == 10


def test_text_and_facets(board):
    path, _ = board
    ix = RunIndex(path)
    ix.refresh(force=True)
    opts = ix.facet_options()
    assert "siglip2+vjepa2" in opts["cfg.backbone"] and set(opts["status"]) == {"done", "failed", "misconfigured"}
    assert opts["cfg.learning_rate"] is None         # continuous: a text box, not a list
    assert text(["a", "b"]) == "a+b" and text(3e-4) == "0.0003" and text(None) == ""
