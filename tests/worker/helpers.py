"""Run the real worker in-process on a tiny research dir."""

from __future__ import annotations

import itertools
import json

import yaml

from orze.config import load_project
from orze.daemon.expect import feature_expectations, run_context, split_expectations, task_expectations
from orze.daemon.verify import verify_run
from orze.space import check_idea, load_space
from orze.worker.train import run_experiment

_counter = itertools.count()


def run_config(layout, overrides: dict, tmp_path=None):
    """Canonicalise `overrides`, run the worker, return (config, metrics, effective, findings)."""
    space = load_space(layout.space_config)
    check = check_idea(space, overrides)
    assert check.ok, check.errors
    run_dir = layout.run_dir(f"t{next(_counter):05d}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(check.config))
    metrics = run_experiment(run_dir, layout, "cpu")
    effective = json.loads((run_dir / "effective_config.json").read_text())
    return check.config, metrics, effective, verify_built_in(layout, check.config, metrics, effective).findings


def verify_built_in(layout, config, metrics, effective):
    """The daemon's verification of a built-in worker's run (as record.gather does it)."""
    project = load_project(layout)
    splits = split_expectations(layout) or {}
    return verify_run(config, effective, metrics, splits.get("split_hashes"), builtin=True,
                      expect={**splits, **feature_expectations(layout, effective),
                              "task": task_expectations(layout, project)}, spec=run_context(project)[1])
