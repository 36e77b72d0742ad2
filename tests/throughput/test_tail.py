"""The leaderboard tail reader the daemon uses to learn peak memory without re-reading the file."""

import json

from orze.layout import Layout
from orze.store.leaderboard import Tail, append_row


def test_tail_returns_only_new_complete_rows(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    tail = Tail(layout.leaderboard)
    assert tail.new_rows() == []
    append_row(layout, {"id": "a", "metric": 0.5})
    append_row(layout, {"id": "b", "metric": 0.6})
    assert [r["id"] for r in tail.new_rows()] == ["a", "b"]
    assert tail.new_rows() == []
    with open(layout.leaderboard, "ab") as f:      # a writer mid-append: a torn line
        f.write(b'{"id": "c", "met')
    assert tail.new_rows() == []
    with open(layout.leaderboard, "ab") as f:
        f.write(b'ric": 0.7}\n')
    assert [r["id"] for r in tail.new_rows()] == ["c"]


def test_tail_rereads_a_rebuilt_file(tmp_path):
    layout = Layout.at(tmp_path).ensure()
    tail = Tail(layout.leaderboard)
    for i in range(3):
        append_row(layout, {"id": f"r{i}"})
    assert len(tail.new_rows()) == 3
    layout.leaderboard.write_text(json.dumps({"id": "only"}) + "\n")   # shorter: rebuilt
    assert [r["id"] for r in tail.new_rows()] == ["only"]
