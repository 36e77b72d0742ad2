"""`orze analyze`, `orze report` and `orze replicate` as a user runs them (subprocess, temp research dir)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orze.analysis.synthetic import synthetic_rows, write_leaderboard
from orze.layout import Layout
from orze.space import check_idea, load_space

REPO = Path(__file__).resolve().parents[2]
FAST = ["--permutations", "10", "--replays", "50", "--tpe-trials", "20"]


def orze(*args, root):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "orze", *args, "--root", str(root)], capture_output=True,
                          text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    root = tmp_path_factory.mktemp("campaign")
    layout = Layout.at(root)
    (root / "configs").mkdir()
    shutil.copy(REPO / "configs" / "space.yaml", layout.space_config)
    rows = synthetic_rows(150, seed=7, space=load_space(layout.space_config))
    rows.append(dict(rows[0], id="bad-1", status="failed", metric=None))
    write_leaderboard(layout.leaderboard, rows)
    return root, rows


def test_analyze_json(campaign):
    root, rows = campaign
    r = orze("analyze", "--json", *FAST, root=root)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["selection"]["rows"] == 151 and out["selection"]["analysed"] == 150
    assert out["selection"]["best"] == pytest.approx(max(x["metric"] for x in rows if x["status"] == "done"))
    assert out["convergence"]["selected"] in ("power", "exponential", "logarithmic")
    assert 0 <= out["variance"]["one_way"]["eta2"] <= 1
    assert out["entropy"]["architecture"]["max"] > 0
    assert [p["policy"] for p in out["baselines"]["table"]] == ["observed", "random", "tpe"]


def test_analyze_tables_and_window_options(campaign):
    root, rows = campaign
    r = orze("analyze", *FAST, root=root)
    assert r.returncode == 0, r.stderr
    assert "Convergence of the best so far" in r.stdout and "Variance decomposition" in r.stdout
    after = orze("analyze", "--json", "--after", rows[99]["id"], *FAST, root=root)
    assert json.loads(after.stdout)["selection"]["analysed"] == 50
    win = orze("analyze", "--json", "--window", "5", *FAST, root=root)
    out = json.loads(win.stdout)
    assert out["selection"]["analysed"] == 5 and "at least" in out["convergence"]["error"]
    since = orze("analyze", "--json", "--since", "2099-01-01", *FAST, root=root)
    assert since.returncode != 0 and "no finished runs" in since.stderr


def test_bad_input_is_a_clear_message_not_a_traceback(campaign, tmp_path):
    root, _ = campaign
    r = orze("analyze", "--after", "no-such-run", root=root)
    assert r.returncode != 0 and "no-such-run" in r.stderr and "Traceback" not in r.stderr
    r = orze("analyze", "--since", "yesterday", root=root)
    assert r.returncode != 0 and "ISO-8601" in r.stderr and "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    (empty / "runs").mkdir(parents=True)
    r = orze("analyze", root=empty)
    assert r.returncode != 0 and "leaderboard" in r.stderr and "Traceback" not in r.stderr
    r = orze("report", root=empty)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_report_writes_html_into_runs_report(campaign):
    root, _ = campaign
    r = orze("report", "--tpe-trials", "10", root=root)
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip().splitlines()[-1])
    assert path == Layout.at(root).report / "index.html"
    assert path.read_text().count("data:image/png;base64,") >= 6


def test_replicate_submits_checked_ideas_with_new_seeds(campaign):
    root, rows = campaign
    layout = Layout.at(root)
    r = orze("replicate", "--top", "3", "--seeds", "2", "--seed", "1", root=root)
    assert r.returncode == 0, r.stderr
    files = list(layout.inbox.glob("*.yaml"))
    assert len(files) == 1
    ideas = yaml.safe_load(files[0].read_text())
    assert len(ideas) == 6
    space = load_space(layout.space_config)
    done = sorted((x for x in rows if x["status"] == "done"), key=lambda x: -x["metric"])
    by_id = {x["id"]: x for x in rows}
    assert [i["parent"] for i in ideas[::2]] == [x["id"] for x in done[:3]]
    for idea in ideas:
        check = check_idea(space, idea)
        assert check.ok, check.errors
        assert idea["source"] == "replicate"
        original = by_id[idea["parent"]]["config"]
        assert idea["seed"] != original["seed"]
        # the same experiment but for the seed (a dimension added to the space since takes its default)
        assert {k: check.config[k] for k in original if k != "seed"} == \
               {k: v for k, v in original.items() if k != "seed"}
    bad = orze("replicate", "--top", "0", "--seeds", "2", root=root)
    assert bad.returncode != 0 and "at least 1" in bad.stderr
