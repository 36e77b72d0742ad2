"""Whatever the umask, nothing Orze writes is world-readable or writable, and records of what an
agent gave are owner-only (or the configured storage group's)."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
import sys

import yaml

from orze.layout import Layout
from tests.conftest import orze_env


def orze_under_umask_000(*args, root):
    code = "import os, sys\nos.umask(0)\nfrom orze.cli.app import main\nsys.argv = ['orze'] + sys.argv[1:]\nmain()\n"
    return subprocess.run([sys.executable, "-c", code, *args, "--root", str(root)], env=orze_env(),
                          capture_output=True, text=True, timeout=120)


def modes(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root / "runs"):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[p] = os.lstat(p).st_mode
    return out


def test_files_and_directories_are_never_world_accessible(tmp_path):
    subprocess.run([sys.executable, "-m", "orze", "init", str(tmp_path)], env=orze_env(), check=True,
                   capture_output=True)
    ideas = tmp_path / "ideas.yaml"
    ideas.write_text("- {backbone: vjepa9}\n- {learning_rate: 0.001}\n")
    r = orze_under_umask_000("submit", str(ideas), root=tmp_path)
    assert r.returncode in (0, 1), r.stderr
    m = modes(tmp_path)
    assert m, "submit wrote nothing under runs/"
    world = [p for p, mode in m.items() if mode & (stat.S_IWOTH | stat.S_IROTH)]
    assert world == [], world
    dirs = [mode for mode in m.values() if stat.S_ISDIR(mode)]
    assert all(stat.S_IMODE(d) & 0o777 == 0o750 for d in dirs)
    records = list(Layout.at(tmp_path).rejected.glob("*.json"))
    assert records and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in records)


def test_a_configured_group_reads_the_records(tmp_path):
    group = grp.getgrgid(os.getgid()).gr_name
    subprocess.run([sys.executable, "-m", "orze", "init", str(tmp_path)], env=orze_env(), check=True,
                   capture_output=True)
    layout = Layout.at(tmp_path)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["storage"] = {"group": group}
    layout.project_config.write_text(yaml.safe_dump(proj))
    from orze.config import load_project

    bound = load_project(layout).bind(layout).ensure()
    assert stat.S_IMODE(bound.rejected.stat().st_mode) == 0o2750
    from orze.store.transitions import Transitions

    Transitions(bound, "n1").reject({"source": "x.yaml", "index": 0, "errors": ["bad"], "idea": {}})
    rec = next(bound.rejected.glob("*.json"))
    assert stat.S_IMODE(rec.stat().st_mode) == 0o640 and rec.stat().st_gid == grp.getgrnam(group).gr_gid


def test_an_unknown_group_is_a_clear_error(tmp_path):
    subprocess.run([sys.executable, "-m", "orze", "init", str(tmp_path)], env=orze_env(), check=True,
                   capture_output=True)
    layout = Layout.at(tmp_path)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["storage"] = {"group": "no-such-group-xyz"}
    layout.project_config.write_text(yaml.safe_dump(proj))
    r = subprocess.run([sys.executable, "-m", "orze", "run", "--once", "--root", str(tmp_path)],
                       env=orze_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "storage.group" in r.stderr and "no-such-group-xyz" in r.stderr
