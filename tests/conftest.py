"""Shared fixtures: the repository's default space, and small research directories with tiny
synthetic features (generated, deterministic) for worker and daemon tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orze.layout import Layout
from orze.space import load_space

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def default_space():
    return load_space(REPO / "configs" / "space.yaml")


def make_research_dir(path: Path, clips: int = 96, frames: int = 12,
                      backbones: tuple[str, ...] = ("vjepa2", "dinov2_b"),
                      extra_encoders: tuple[str, ...] = ("transformer",),
                      project: dict | None = None) -> Layout:
    """A research dir from `orze init` defaults, tiny synthetic features, and (for speed) the
    transformer baseline added to the encoder choices."""
    from orze.cli.init import init_directory
    from orze.demo.synth import generate

    init_directory(path)
    layout = Layout.at(path)
    space = yaml.safe_load(layout.space_config.read_text())
    enc = space["dimensions"]["temporal_encoder"]
    enc["choices"] = list(enc["choices"]) + [e for e in extra_encoders if e not in enc["choices"]]
    if extra_encoders:
        enc["default"] = extra_encoders[0]
    space["dimensions"]["d_model"]["default"] = 16
    space["dimensions"]["num_layers"]["default"] = 1
    space["dimensions"]["epochs"]["choices"] = [1, 2, 3, 5, 15]
    space["dimensions"]["epochs"]["default"] = 2
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["agents"] = []
    proj["sweeps"] = {"enabled": False}  # auto-sweeps would add runs of their own; tests opt in
    proj["pruning"] = {"enabled": False}  # pruning would stop runs tests expect done; tests opt in
    proj["scheduler"].update({"cpu_slots": 2, "poll_s": 0.2, "threads_per_slot": 1})
    if not backbones:
        # No feature store at all: a task of its own (a custom worker reading its own data), so
        # admission's store check is off, as docs/tasks.md says to do for such a worker.
        proj.setdefault("admission", {})["require_feature_store"] = False
    for section, values in (project or {}).items():
        if isinstance(values, dict):
            proj.setdefault(section, {}).update(values)
        else:
            proj[section] = values
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    generate(layout, n_clips=clips, frames=frames, seed=0, backbones=backbones)
    return layout


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Layout:
    """A read-mostly research dir shared by worker tests (each test uses its own run dirs)."""
    return make_research_dir(tmp_path_factory.mktemp("tiny"))


def orze_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("ORZE_THREADS", "1")
    env.update(extra or {})
    return env


def run_orze(*args: str, root: Path | None = None, input: str | None = None, timeout: float = 300,
             check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "orze", *args]
    if root is not None:
        argv += ["--root", str(root)]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          env={**orze_env(), **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"orze {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
