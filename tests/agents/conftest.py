from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from orze.layout import Layout
from orze.space import load_space

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    shutil.copytree(REPO / "configs", tmp_path / "configs")
    shutil.copytree(REPO / "prompts", tmp_path / "prompts")
    return Layout.at(tmp_path).ensure()


@pytest.fixture
def space():
    return load_space(REPO / "configs" / "space.yaml")


def make_row(i: int, metric: float | None, config: dict[str, Any], status: str = "done",
             **extra: Any) -> dict[str, Any]:
    from orze.space import check_idea
    check = check_idea(load_space(REPO / "configs" / "space.yaml"), config)
    assert check.ok, check.errors
    row = {"id": f"run-{i:06d}", "status": status, "metric": metric, "metric_name": "val_ap",
           "test_metric": 0.987654 if metric is not None else None, "config": check.config,
           "finished_at": 1_700_000_000 + i, "error": None}
    row.update(extra)
    return row
