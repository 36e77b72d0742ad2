import json

from orze.layout import Layout
from orze.store.leaderboard import append_row, ranked, read_rows, rebuild, rows_to_frame


def row(i, metric, test=0.5, status="done", **kw):
    return {"id": f"r{i}", "status": status, "metric": metric, "test_metric": test,
            "config": {"backbone": ["a", "b"] if i % 2 else "a", "pooling": "mean"},
            "finished_at": 100.0 + i, **kw}


def test_append_and_read_back(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    for i in range(5):
        append_row(layout, row(i, 0.1 * i))
    rows = read_rows(layout.leaderboard)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(5)]
    assert not layout.leaderboard_lock.exists()


def test_torn_last_line_and_garbage_are_skipped(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    append_row(layout, row(1, 0.5))
    with open(layout.leaderboard, "ab") as f:
        f.write(b"\x00\x00\x00\n{not json}\n")
        f.write(json.dumps(row(2, 0.6)).encode() + b"\n")
        f.write(b'{"id": "r3", "status": "do')  # a writer killed mid-record
    assert [r["id"] for r in read_rows(layout.leaderboard)] == ["r1", "r2"]


def test_ranking_uses_validation_only_and_excludes_unverified():
    rows = [row(1, 0.70, test=0.99), row(2, 0.80, test=0.10), row(3, 0.95, status="misconfigured"),
            row(4, 0.90, status="failed"), row(5, None)]
    assert [r["id"] for r in ranked(rows)] == ["r2", "r1"]


def test_frame_flattens_config(tmp_path):
    df = rows_to_frame([row(1, 0.5), row(2, 0.6)])
    assert list(df["backbone"]) == ["a+b", "a"]
    assert list(df["seq"]) == [0, 1]


def test_rebuild_from_results(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    for i in (2, 1, 3):
        d = layout.run_dir(f"r{i}")
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps(row(i, 0.1 * i)))
    layout.leaderboard.write_text("garbage\n")
    assert rebuild(layout) == 3
    assert [r["id"] for r in read_rows(layout.leaderboard)] == ["r1", "r2", "r3"]


def test_rows_with_nan_metrics_are_read_back(tmp_path):
    from orze.layout import Layout
    from orze.store.leaderboard import append_row, read_rows

    layout = Layout.at(tmp_path).ensure()
    append_row(layout, {"id": "a", "status": "done", "metric": float("nan")})   # a one-class split
    append_row(layout, {"id": "b", "status": "done", "metric": 0.5})
    rows = read_rows(layout.leaderboard)
    assert [r["id"] for r in rows] == ["a", "b"] and rows[0]["metric"] != rows[0]["metric"]


def test_has_replicates_ignores_seed_and_unfinished_runs():
    from orze.cli.leaderboard import has_replicates

    a = {"status": "done", "config": {"lr": 0.1, "seed": 0}}
    assert not has_replicates([a, {"status": "done", "config": {"lr": 0.2, "seed": 1}}])
    assert has_replicates([a, {"status": "done", "config": {"seed": 5, "lr": 0.1}}])
    assert not has_replicates([a, {"status": "failed", "config": {"lr": 0.1, "seed": 5}}])
