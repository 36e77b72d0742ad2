"""scripts/bench_encoders.py keeps working (no timing is asserted: figures are for people to read)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_encoders.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_encoders", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_one_reports_what_it_built(bench):
    row = bench.bench_one("xlstm", "cpu", clips=8, T=5, D=6, d_model=16, layers=3, heads=2, batch=4, epochs=1)
    assert (row["encoder"], row["class"], row["d_model"], row["num_layers"], row["num_heads"]) == \
        ("xlstm", "XLSTM", 16, 3, 2)
    assert row["clips_per_s"] > 0 and row["peak_mem_mb"] >= 0 and row["amp"] == "fp32"
