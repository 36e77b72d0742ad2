import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from orze.cli.app import app
from orze.features.importers import FeatureImportError, import_features
from orze.features.store import Clip, open_store, read_clips, write_clips
from orze.layout import Layout

from .conftest import said

runner = CliRunner()
CLIPS = [Clip("a", 0, "train"), Clip("b", 1, "train"), Clip("c", 1, "val")]
T, D = 3, 4


def _feats(seed=0):
    rng = np.random.default_rng(seed)
    return {c.clip_id: rng.normal(size=(T, D)).astype(np.float32) for c in CLIPS}


def _check_store(store_dir, feats, order=("a", "b", "c")):
    store = open_store(store_dir)
    assert store.ids == list(order)
    assert store.array.dtype == np.float16 and store.array.shape == (len(order), T, D)
    for i, cid in enumerate(order):
        assert np.allclose(store.array[i], feats[cid], atol=2e-3)
    return store


def test_per_clip_npy_and_npz_files(tmp_path):
    feats = _feats()
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "a.npy", feats["a"])
    np.savez(src / "b.npz", feats["b"])
    np.savez(src / "c.npz", emb=feats["c"], other=np.zeros(2))
    np.save(src / "zzz.npy", feats["a"])  # not in clips.csv: reported, left out
    with pytest.raises(FeatureImportError, match=r"c.npz: holds 2 arrays \(emb, other\); name one with --key"):
        import_features(tmp_path / "st", "x", src, CLIPS)
    (src / "c.npz").unlink()
    np.savez(src / "c.npz", emb=feats["c"])
    rep = import_features(tmp_path / "st", "mine", src, CLIPS)
    assert rep.format == "npy-dir" and rep.ignored == ["zzz"]
    store = _check_store(tmp_path / "st", feats)
    assert store.meta["source"] == "import" and store.meta["ignored_clips"] == 1


def test_one_array_with_text_or_csv_index(tmp_path):
    feats = _feats(1)
    order = ["c", "a", "b"]
    np.save(tmp_path / "all.npy", np.stack([feats[k] for k in order]))
    (tmp_path / "ids.txt").write_text("c\na\nb\n")
    rep = import_features(tmp_path / "s1", "x", tmp_path / "all.npy", CLIPS, index=tmp_path / "ids.txt")
    assert rep.format == "array"
    _check_store(tmp_path / "s1", feats)  # rows follow clips.csv, not the source's order
    pd.DataFrame({"clip_id": order, "n": [1, 2, 3]}).to_csv(tmp_path / "ids.csv", index=False)
    import_features(tmp_path / "s2", "x", tmp_path / "all.npy", CLIPS, index=tmp_path / "ids.csv")
    _check_store(tmp_path / "s2", feats)


def test_parquet_nested_flat_and_long(tmp_path):
    feats = _feats(2)
    ids = [c.clip_id for c in CLIPS]
    nested = pd.DataFrame({"clip_id": ids, "features": [feats[k].tolist() for k in ids]})
    nested.to_parquet(tmp_path / "nested.parquet")
    import_features(tmp_path / "s1", "x", tmp_path / "nested.parquet", CLIPS)
    _check_store(tmp_path / "s1", feats)

    flat = pd.DataFrame({"clip_id": ids, "emb": [feats[k].ravel().tolist() for k in ids]})
    flat.to_parquet(tmp_path / "flat.parquet")
    with pytest.raises(FeatureImportError, match="flat list; pass --frames T"):
        import_features(tmp_path / "s2", "x", tmp_path / "flat.parquet", CLIPS, column="emb")
    import_features(tmp_path / "s2", "x", tmp_path / "flat.parquet", CLIPS, column="emb", frames=T)
    _check_store(tmp_path / "s2", feats)

    rows = [{"clip_id": k, "frame": t, "features": feats[k][t].tolist()}
            for k in ids for t in reversed(range(T))]
    pd.DataFrame(rows).to_parquet(tmp_path / "long.parquet")
    import_features(tmp_path / "s3", "x", tmp_path / "long.parquet", CLIPS)
    _check_store(tmp_path / "s3", feats)


def _npy_dir(tmp_path, feats):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for k, v in feats.items():
        np.save(src / f"{k}.npy", v)
    return src


@pytest.mark.parametrize("mutate,message", [
    (lambda f: f.pop("b"), r"1 clip\(s\) of features/clips.csv have no features, first: b"),
    (lambda f: f.__setitem__("b", np.zeros((T, D + 1), np.float32)), r"clip .b. has 5 feature dims, but clip .a. has 4"),
    (lambda f: f.__setitem__("b", np.zeros((T, D), np.int32)), "dtype int32; features must be floating"),
    (lambda f: f["c"].__setitem__((1, 2), np.nan), "clip 'c' has NaN/inf at frame 1, dim 2"),
    (lambda f: f["c"].__setitem__((0, 0), np.inf), "clip 'c' has NaN/inf at frame 0, dim 0"),
    (lambda f: f["a"].__setitem__((0, 1), 1e6), "beyond the float16 range"),
    (lambda f: f.__setitem__("a", np.zeros(D, np.float32)), r"a.npy: expected a \(T, D\) array"),
])
def test_invalid_sources_are_refused_naming_file_and_clip(tmp_path, mutate, message):
    feats = _feats()
    mutate(feats)
    src = _npy_dir(tmp_path, feats)
    with pytest.raises(FeatureImportError, match=message):
        import_features(tmp_path / "st", "x", src, CLIPS)
    assert not (tmp_path / "st" / "meta.json").exists()


def test_array_index_and_parquet_errors(tmp_path):
    arr = np.zeros((3, T, D), np.float32)
    np.save(tmp_path / "all.npy", arr)
    with pytest.raises(FeatureImportError, match="needs --index"):
        import_features(tmp_path / "s", "x", tmp_path / "all.npy", CLIPS)
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(FeatureImportError, match="3 rows but .*two.txt names 2"):
        import_features(tmp_path / "s", "x", tmp_path / "all.npy", CLIPS, index=tmp_path / "two.txt")
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(FeatureImportError, match="clip_id 'a' appears more than once"):
        import_features(tmp_path / "s", "x", tmp_path / "all.npy", CLIPS, index=tmp_path / "dup.txt")
    np.save(tmp_path / "flat.npy", np.zeros((3, D)))
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    with pytest.raises(FeatureImportError, match=r"expected an \(N, T, D\) array"):
        import_features(tmp_path / "s", "x", tmp_path / "flat.npy", CLIPS, index=tmp_path / "ids.txt")
    pd.DataFrame({"clip_id": ["a"], "vec": [[1.0]]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(FeatureImportError, match="no column 'features'"):
        import_features(tmp_path / "s", "x", tmp_path / "p.parquet", CLIPS)
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(FeatureImportError, match="junk.parquet: not a readable Parquet file"):
        import_features(tmp_path / "s", "x", tmp_path / "junk.parquet", CLIPS)
    (tmp_path / "feat.h5").write_bytes(b"")
    with pytest.raises(FeatureImportError, match="cannot tell the format"):
        import_features(tmp_path / "s", "x", tmp_path / "feat.h5", CLIPS)


def test_existing_store_needs_force(tmp_path):
    src = _npy_dir(tmp_path, _feats())
    import_features(tmp_path / "st", "x", src, CLIPS)
    with pytest.raises(FeatureImportError, match="exists; pass --force"):
        import_features(tmp_path / "st", "x", src, CLIPS)
    import_features(tmp_path / "st", "x", src, CLIPS, overwrite=True)


def test_cli_import_writes_store_and_clips_csv(tmp_path):
    layout = Layout.at(tmp_path / "r")
    src = _npy_dir(tmp_path, _feats())
    write_clips(tmp_path / "labels.csv", CLIPS)
    res = runner.invoke(app, ["features", "import", "--root", str(layout.root), "-b", "dinov2_b",
                              "--from", str(src), "--labels", str(tmp_path / "labels.csv"),
                              "--model-id", "facebook/dinov2-base", "--fps", "5"])
    assert res.exit_code == 0, res.output
    store = open_store(layout.backbone_dir("dinov2_b"))
    assert store.meta["model_id"] == "facebook/dinov2-base" and store.meta["fps"] == 5.0
    assert read_clips(layout.clips_csv) == CLIPS
    res = runner.invoke(app, ["features", "import", "--root", str(layout.root), "-b", "siglip2",
                              "--from", str(tmp_path / "missing")])
    assert res.exit_code == 2 and said(res, "missing: not found")


def test_a_failed_reimport_keeps_the_old_store(tmp_path):
    feats = _feats()
    src = _npy_dir(tmp_path, feats)
    import_features(tmp_path / "st", "x", src, CLIPS)
    before = (tmp_path / "st" / "features.npy").read_bytes()
    bad = dict(feats)
    bad["c"] = feats["c"].copy()
    bad["c"][0, 0] = np.nan
    np.save(src / "c.npy", bad["c"])  # the last clip fails after two rows were streamed
    with pytest.raises(FeatureImportError, match="NaN/inf"):
        import_features(tmp_path / "st", "x", src, CLIPS, overwrite=True)
    assert (tmp_path / "st" / "features.npy").read_bytes() == before
    _check_store(tmp_path / "st", feats)


def test_cli_import_warns_when_the_space_lacks_the_backbone(tmp_path):
    import shutil
    from pathlib import Path

    layout = Layout.at(tmp_path / "r")
    layout.configs.mkdir(parents=True)
    shutil.copy(Path(__file__).parents[2] / "configs" / "space.yaml", layout.space_config)
    src = _npy_dir(tmp_path, _feats())
    write_clips(tmp_path / "labels.csv", CLIPS)
    args = ["features", "import", "--root", str(layout.root), "--from", str(src),
            "--labels", str(tmp_path / "labels.csv")]
    res = runner.invoke(app, args + ["-b", "clip_vitl"])
    assert res.exit_code == 0 and said(res, "'clip_vitl' is not a backbone choice")
    res = runner.invoke(app, args + ["-b", "dinov2_b"])
    assert res.exit_code == 0 and not said(res, "is not a backbone choice")


def test_imported_store_groups_rows_by_split(tmp_path):
    """Each split is one contiguous block of rows, read by the worker as one slice."""
    import numpy as np

    from orze.features.importers import plan
    from orze.features.store import SPLITS, Clip

    clips = [Clip(f"c{i}", i % 2, SPLITS[i % 3]) for i in range(9)]
    order, extra = plan({c.clip_id: np.zeros((2, 3)) for c in clips}, clips, tmp_path)
    assert extra == []
    splits = [SPLITS[int(cid[1:]) % 3] for cid in order]
    assert splits == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
    assert order[:3] == ["c0", "c3", "c6"]   # clips.csv order kept within a split
