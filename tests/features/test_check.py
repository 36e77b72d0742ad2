import json

import numpy as np
from typer.testing import CliRunner

from orze.cli.app import app
from orze.features.check import check_array, check_coverage, check_features, check_frames, check_split
from orze.features.store import Clip, PARTIAL_DIR, write_clips, write_store
from orze.layout import Layout

from .conftest import said

runner = CliRunner()
GOOD = [Clip("a", 0, "train"), Clip("b", 1, "train"), Clip("c", 0, "val"), Clip("d", 1, "val"),
        Clip("e", 0, "test"), Clip("f", 1, "test")]


def codes(issues, level=None):
    return sorted(i.code for i in issues if level is None or i.level == level)


def _research(tmp_path, backbones=("dinov2_b", "siglip2"), clips=GOOD, frames=4):
    layout = Layout.at(tmp_path)
    write_clips(layout.clips_csv, clips)
    rng = np.random.default_rng(0)
    ids = [c.clip_id for c in clips]
    for b in backbones:
        write_store(layout.backbone_dir(b), b, ids, rng.normal(size=(len(ids), frames, 8)), {})
    return layout


def test_a_sound_research_dir_passes(tmp_path):
    report = check_features(_research(tmp_path))
    assert report.ok and report.issues == []
    assert [(s.split, s.clips, s.positives) for s in report.splits] == [
        ("train", 2, 1), ("val", 2, 1), ("test", 2, 1)]
    assert set(report.stores) == {"dinov2_b", "siglip2"}


# --- split ---------------------------------------------------------------------------------

def test_split_overlap_is_an_error():
    issues, _ = check_split(GOOD + [Clip("a", 0, "val")])
    assert codes(issues, "error") == ["split-overlap"]
    assert "a in train+val" in issues[0].message


def test_duplicate_clip_is_an_error():
    issues, _ = check_split(GOOD + [Clip("a", 0, "train")])
    assert codes(issues) == ["duplicate-clip"]


def test_missing_train_or_val_is_an_error_missing_test_a_warning():
    issues, _ = check_split([c for c in GOOD if c.split != "val"])
    assert codes(issues, "error") == ["split-missing"] and "'val'" in issues[0].message
    issues, _ = check_split([c for c in GOOD if c.split != "test"])
    assert codes(issues, "error") == [] and codes(issues, "warning") == ["split-missing"]


def test_single_class_split_is_an_error():
    clips = [c for c in GOOD if not (c.split == "val" and c.label == 1)]
    issues, _ = check_split(clips)
    assert codes(issues) == ["single-class"] and "'val' has only negative" in issues[0].message


def test_label_balance_warns_beyond_the_ratio():
    clips = GOOD + [Clip(f"n{i}", 0, "val") for i in range(8)]  # val rate 1/10 vs train 1/2
    issues, _ = check_split(clips)
    assert codes(issues) == ["label-balance"] and issues[0].level == "warning"
    issues, _ = check_split(clips, max_rate_ratio=10)
    assert issues == []


def test_labels_are_checked_by_the_task_type():
    three = [Clip(f"{s}{c}{i}", c, s) for s in ("train", "val", "test") for c in range(3) for i in range(2)]
    issues, summaries = check_split(three, task_type="multiclass")
    assert issues == [] and [sm.class_counts for sm in summaries] == [[2, 2, 2]] * 3
    # a binary task given three classes: the daemon's own rule, with what to set
    issues, _ = check_split(three)
    assert codes(issues) == ["labels"] and "set task.type: multiclass" in issues[0].message
    # multiclass: no single-class error for "no class 1" semantics; a class absent from val warns,
    # shares far from train's warn, a class absent everywhere is the daemon's error
    no_val_2 = [c for c in three if not (c.split == "val" and c.label == 2)]
    issues, _ = check_split(no_val_2, task_type="multiclass")
    assert codes(issues, "error") == [] and "class-missing" in codes(issues, "warning")
    assert any("'val' has no clip of class(es) 2" in i.message for i in issues)
    skewed = three + [Clip(f"x{i}", 0, "test") for i in range(10)]
    issues, _ = check_split(skewed, task_type="multiclass")
    assert codes(issues) == ["label-balance"] and "'test'" in issues[0].message
    assert check_split(skewed, max_rate_ratio=20, task_type="multiclass")[0] == []
    gap = [c for c in three if c.label != 1]
    issues, _ = check_split(gap, task_type="multiclass")
    assert codes(issues, "error") == ["labels"] and "every class present" in issues[0].message


def test_unreadable_clips_csv(tmp_path):
    layout = _research(tmp_path)
    layout.clips_csv.write_text("clip_id,label,split\na,yes,train\n")
    report = check_features(layout)
    assert codes(report.errors) == ["clips-csv"] and "label 'yes' is not a class index" in report.errors[0].message


# --- one store -----------------------------------------------------------------------------

def _arr(n=3, t=2, d=4, dtype=np.float16):
    return np.ones((n, t, d), dtype=dtype)


def _meta(arr, backbone="x"):
    return {"backbone": backbone, "num_clips": arr.shape[0], "frames": arr.shape[1], "dim": arr.shape[2]}


def test_array_checks():
    ids = ["a", "b", "c"]
    a = _arr()
    assert check_array("x", "p", ids, a, _meta(a)) == []
    assert codes(check_array("x", "p", ids, np.ones((3, 4)), {})) == ["shape"]
    assert codes(check_array("x", "p", ids[:2], a, _meta(a))) == ["shape"]
    f32 = _arr(dtype=np.float32)
    assert codes(check_array("x", "p", ids, f32, _meta(f32))) == ["dtype"]
    bad_meta = {**_meta(a), "dim": 5, "backbone": "y"}
    issues = check_array("x", "p", ids, a, bad_meta)
    assert codes(issues) == ["meta", "meta"] and any("dim is 5 but the store has 4" in i.message for i in issues)
    assert codes(check_array("x", "p", ["a", "b", "a"], a, _meta(a))) == ["duplicate-id"]
    nan = a.copy()
    nan[1, 0, 2] = np.nan
    nan[2, 1, 0] = np.inf
    issues = check_array("x", "p", ids, nan, _meta(nan), chunk=2)  # chunked scan crosses blocks
    assert codes(issues) == ["nonfinite"] and "2 clip(s) with NaN/inf: b, c" in issues[0].message
    zero = a.copy()
    zero[0] = 0
    issues = check_array("x", "p", ids, zero, _meta(zero))
    assert codes(issues, "warning") == ["zero-features"] and issues[0].message.endswith(": a")


def test_coverage_and_frames():
    issues = check_coverage("x", "p", ["a", "b", "z"], ["a", "b", "c"], "clips.csv")
    assert codes(issues, "error") == ["missing-clips"] and codes(issues, "warning") == ["unknown-clips"]
    assert "c" in issues[0].message and "z" in issues[1].message
    assert codes(check_frames({"a": 4, "b": 8}, "features")) == ["frames-differ"]
    assert check_frames({"a": 4, "b": 4}, "features") == []


# --- stores on disk (I/O) ------------------------------------------------------------------

def test_a_clip_missing_from_one_backbone(tmp_path):
    layout = _research(tmp_path)
    write_store(layout.backbone_dir("siglip2"), "siglip2", ["a", "b", "c", "d", "e"],
                np.ones((5, 4, 8)), {})
    report = check_features(layout)
    assert codes(report.errors) == ["missing-clips"]
    assert "siglip2" in report.errors[0].path and report.errors[0].message.endswith(": f")


def test_no_stores(tmp_path):
    layout = Layout.at(tmp_path)
    write_clips(layout.clips_csv, GOOD)
    assert codes(check_features(layout).errors) == ["no-stores"]


def test_incomplete_unreadable_and_unfinished_stores(tmp_path):
    layout = _research(tmp_path)
    (layout.backbone_dir("dinov2_b") / "meta.json").unlink()
    (layout.backbone_dir("siglip2") / "features.npy").write_bytes(b"garbage")
    (layout.backbone_dir("convnext") / PARTIAL_DIR).mkdir(parents=True)
    report = check_features(layout)
    assert codes(report.errors) == ["incomplete", "incomplete", "unreadable"]
    assert codes(report.warnings) == ["unfinished"]
    bad_meta = _research(tmp_path / "two")
    (bad_meta.backbone_dir("siglip2") / "meta.json").write_text("{not json")
    assert codes(check_features(bad_meta).errors) == ["unreadable"]


def test_frame_counts_differ_across_backbones(tmp_path):
    layout = _research(tmp_path, backbones=("dinov2_b",))
    write_store(layout.backbone_dir("vjepa2"), "vjepa2", [c.clip_id for c in GOOD],
                np.ones((6, 8, 8)), {})
    report = check_features(layout)
    assert report.ok and codes(report.warnings) == ["frames-differ"]


def test_only_named_backbones_are_checked(tmp_path):
    layout = _research(tmp_path)
    report = check_features(layout, ["dinov2_b", "convnext"])
    assert codes(report.errors) == ["incomplete"] and "convnext" in report.errors[0].path


def test_cli_exit_codes_and_json(tmp_path):
    layout = _research(tmp_path)
    res = runner.invoke(app, ["features", "check", "--root", str(layout.root)])
    assert res.exit_code == 0 and said(res, "ok, 0 warning(s)")
    write_clips(layout.clips_csv, GOOD + [Clip("a", 0, "test")])
    res = runner.invoke(app, ["features", "check", "--root", str(layout.root)])
    assert res.exit_code == 1 and said(res, "[split-overlap]") and said(res, "clips.csv")
    res = runner.invoke(app, ["features", "check", "--root", str(layout.root), "--json"])
    data = json.loads(res.output)
    assert res.exit_code == 1 and data["ok"] is False
    assert {i["code"] for i in data["issues"]} == {"split-overlap"}


def test_missing_clip_ids_file_and_empty_clips_csv(tmp_path):
    layout = _research(tmp_path)
    (layout.backbone_dir("siglip2") / "clips.txt").unlink()
    report = check_features(layout)
    assert codes(report.errors) == ["unreadable"] and report.errors[0].path.endswith("clips.txt")
    layout.clips_csv.write_text("clip_id,label,split\n")
    assert "clips-csv" in codes(check_features(layout).errors)


def test_a_float32_store_on_disk_is_a_dtype_error(tmp_path):
    layout = _research(tmp_path, backbones=("dinov2_b",))
    np.save(layout.backbone_dir("dinov2_b") / "features.npy", np.ones((6, 4, 8), np.float32))
    assert codes(check_features(layout).errors) == ["dtype"]
