"""LineTail: only new complete lines each call; a torn line waits; a replaced file restarts."""

import json
import os

from orze.store.jsonl_tail import LineTail


def test_reads_new_complete_lines_and_restarts_on_replacement(tmp_path):
    path = tmp_path / "f.jsonl"
    tail = LineTail(path)
    assert tail.new() == []                       # absent
    path.write_text('{"a": 1}\n{"a": 2')
    assert tail.new() == [{"a": 1}]               # the torn second line waits
    with open(path, "a") as f:
        f.write('}\nnot json\n[1]\n{"a": 3}\n')
    assert tail.new() == [{"a": 2}, {"a": 3}] and not tail.restarted
    assert tail.new() == []
    tmp = tmp_path / "g.jsonl"
    tmp.write_text(json.dumps({"b": 1}) + "\n")
    os.replace(tmp, path)
    assert tail.new() == [{"b": 1}] and tail.restarted
