"""Per-clip lengths in the feature store: writing, reading, ragged import, and `features check`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from orze.cli.app import app
from orze.features.check import check_features
from orze.features.importers import import_arrays, import_features
from orze.features.lengths import seq_len_effect, trailing_zero_frames
from orze.features.store import Clip, FeatureStoreError, open_store, write_clips, write_store
from orze.features.writer import write_store_rows
from orze.layout import Layout

CLIPS = [Clip("a", 0, "train"), Clip("b", 1, "train"), Clip("c", 0, "val"), Clip("d", 1, "val"),
         Clip("e", 0, "test"), Clip("f", 1, "test")]
LENGTHS = {"a": 3, "b": 7, "c": 5, "d": 2, "e": 7, "f": 4}
D = 4


def _ragged(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {cid: rng.normal(size=(n, D)).astype(np.float32) for cid, n in LENGTHS.items()}


def test_a_store_without_lengths_has_every_clip_full_length(tmp_path):
    write_store(tmp_path / "s", "x", ["a", "b"], np.ones((2, 5, D)), {})
    store = open_store(tmp_path / "s")
    assert not store.ragged and store.lengths.tolist() == [5, 5]
    assert not (tmp_path / "s" / "lengths.npy").exists()
    assert "ragged" not in json.loads((tmp_path / "s" / "meta.json").read_text())


def test_write_store_with_lengths_round_trips_and_validates(tmp_path):
    write_store(tmp_path / "s", "x", ["a", "b"], np.ones((2, 5, D)), {}, lengths=[5, 2])
    store = open_store(tmp_path / "s")
    assert store.ragged and store.lengths.tolist() == [5, 2] and store.frames == 5
    assert store.meta["lengths"] == {"min": 2, "mean": 3.5, "max": 5}
    with pytest.raises(FeatureStoreError, match=r"row 1 has length 6; lengths must be 1..5"):
        write_store(tmp_path / "t", "x", ["a", "b"], np.ones((2, 5, D)), {}, lengths=[5, 6])
    with pytest.raises(FeatureStoreError, match="expected 2 integer clip lengths"):
        write_store(tmp_path / "t", "x", ["a", "b"], np.ones((2, 5, D)), {}, lengths=[5.0, 2.0])
    # a broken lengths.npy is named when the store is opened
    np.save(tmp_path / "s" / "lengths.npy", np.array([0, 2]))
    with pytest.raises(FeatureStoreError, match=r"lengths.npy: row 0 has length 0"):
        open_store(tmp_path / "s")
    (tmp_path / "s" / "lengths.npy").unlink()
    with pytest.raises(FeatureStoreError, match="lengths.npy: meta.json says the store is ragged"):
        open_store(tmp_path / "s")
    # replacing a ragged store by a plain one removes its lengths
    write_store(tmp_path / "t", "x", ["a"], np.ones((1, 5, D)), {}, lengths=[3])
    write_store(tmp_path / "t", "x", ["a"], np.ones((1, 5, D)), {})
    assert not (tmp_path / "t" / "lengths.npy").exists() and not open_store(tmp_path / "t").ragged


def test_streamed_ragged_rows_are_zero_padded(tmp_path):
    feats = _ragged()
    ids = list(feats)
    write_store_rows(tmp_path / "s", "x", ids, (feats[i] for i in ids), 7, D, {}, ragged=True)
    store = open_store(tmp_path / "s")
    assert store.lengths.tolist() == [LENGTHS[i] for i in ids]
    for i, cid in enumerate(ids):
        n = LENGTHS[cid]
        assert np.allclose(store.array[i, :n], feats[cid], atol=1e-2) and not store.array[i, n:].any()
    with pytest.raises(FeatureStoreError, match=r"expected \(1..7, 4\)"):
        write_store_rows(tmp_path / "t", "x", ["a"], [np.ones((8, D))], 7, D, {}, ragged=True)


@pytest.mark.parametrize("layout_kind", ["npy-dir", "npz"])
def test_ragged_import_makes_a_ragged_store(tmp_path, layout_kind):
    feats = _ragged()
    if layout_kind == "npy-dir":
        src = tmp_path / "src"
        src.mkdir()
        for cid, a in feats.items():
            np.save(src / f"{cid}.npy", a)
    else:
        src = tmp_path / "clips.npz"
        np.savez(src, **feats)
    report = import_features(tmp_path / "st", "x", src, CLIPS)
    assert report.format == layout_kind and report.ragged and report.frames == 7
    assert report.lengths == {"min": 2, "mean": round(28 / 6, 3), "max": 7}
    store = open_store(tmp_path / "st")
    assert dict(zip(store.ids, store.lengths.tolist())) == LENGTHS


def test_equal_lengths_import_is_a_plain_store_and_dims_must_agree(tmp_path):
    feats = {c.clip_id: np.ones((4, D), np.float32) for c in CLIPS}
    report = import_arrays(tmp_path / "st", "x", feats, CLIPS)
    assert not report.ragged and not (tmp_path / "st" / "lengths.npy").exists()
    feats["c"] = np.ones((4, D + 1), np.float32)
    with pytest.raises(FeatureStoreError, match="clip 'c' has 5 feature dims, but clip 'a' has 4"):
        import_arrays(tmp_path / "s2", "x", feats, CLIPS)
    feats["c"] = np.ones((0, D), np.float32)
    with pytest.raises(FeatureStoreError, match="clip 'c' has shape \\(0, 4\\); expected \\(T, D\\) with at least one frame"):
        import_arrays(tmp_path / "s2", "x", feats, CLIPS)


def test_seq_len_effect_and_hand_padding_detection():
    eff = seq_len_effect(np.array([2, 4, 10]), 4)
    assert eff == {"seq_len": 4, "frames_dropped": 0.375, "clips_cropped": 1, "padding": round(2 / 12, 4)}
    block = np.ones((2, 5, 3))
    block[0, 3:] = 0
    block[1] = 0
    assert trailing_zero_frames(block).tolist() == [2, 5]


def _research(tmp_path, default_seq: int) -> Layout:
    from orze.cli.init import init_directory

    init_directory(tmp_path)
    layout = Layout.at(tmp_path)
    space = yaml.safe_load(layout.space_config.read_text())
    space["dimensions"]["seq_len"]["default"] = default_seq
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))
    write_clips(layout.clips_csv, CLIPS)
    return layout


def test_check_reports_lengths_and_warns_on_crops_and_padding(tmp_path):
    layout = _research(tmp_path, 4)
    feats = _ragged()
    feats["a"] = np.ones((40, D), np.float32)          # one long clip: the store becomes mostly padding
    import_arrays(layout.backbone_dir("x"), "x", feats, CLIPS)
    report = check_features(layout)
    assert report.ok
    s = report.stores["x"]
    assert s["lengths"]["max"] == 40 and s["lengths"]["ragged"] and s["lengths"]["padding"] > 0.5
    assert s["seq_len"]["seq_len"] == 4 and s["seq_len"]["frames_dropped"] > 0
    warned = [f"{i.code}: {i.message}" for i in report.warnings]
    assert any(w.startswith("seq-len-crops: seq_len 4 (the default in the space) drops") for w in warned)
    assert any(w.startswith("seq-len-crops: seq_len 20 (the largest in the space) drops") for w in warned)
    assert any(w.startswith("padding: ") and "of 'x' is padding" in w for w in warned)
    result = CliRunner().invoke(app, ["features", "check", "--root", str(tmp_path)])
    assert result.exit_code == 0 and "seq_len 4" in result.output and "lengths" in result.output


def test_check_flags_hand_padding_in_a_store_without_lengths(tmp_path):
    layout = _research(tmp_path, 20)
    arr = np.random.default_rng(0).normal(size=(6, 10, D))
    arr[:, 5:] = 0                                       # padded by hand: half the frames are zero
    write_store(layout.backbone_dir("x"), "x", [c.clip_id for c in CLIPS], arr, {})
    warned = {i.code: i.message for i in check_features(layout).warnings}
    assert "50% of 'x' are trailing all-zero frames" in warned["hand-padding"]


def test_cli_import_prints_lengths_and_warns(tmp_path):
    layout = _research(tmp_path, 4)
    src = tmp_path / "clips.npz"
    np.savez(src, **_ragged())
    write_clips(tmp_path / "labels.csv", CLIPS)
    result = CliRunner().invoke(app, ["features", "import", "--backbone", "x", "--from", str(src),
                                      "--labels", str(tmp_path / "labels.csv"), "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "clips of 2–7 frames" in result.output and "seq_len 4" in result.output
    assert open_store(layout.backbone_dir("x")).ragged
