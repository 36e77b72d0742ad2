import numpy as np
import pytest

from orze.features.store import FeatureStoreError, open_store, write_store
from orze.features.writer import write_store_rows


def test_streamed_store_equals_write_store(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(5, 3, 4)).astype(np.float32)
    ids = [f"c{i}" for i in range(5)]
    write_store(tmp_path / "a", "b", ids, arr, {"fps": 5.0})
    write_store_rows(tmp_path / "s", "b", ids, iter(arr), 3, 4, {"fps": 5.0})
    a, s = open_store(tmp_path / "a"), open_store(tmp_path / "s")
    assert a.ids == s.ids and a.meta == s.meta
    assert s.array.dtype == np.float16 and np.array_equal(a.array, s.array)
    assert (tmp_path / "a" / "features.npy").read_bytes() == (tmp_path / "s" / "features.npy").read_bytes()


def _no_temp(d):
    return not any(p.name.endswith(".tmp") for p in d.iterdir())


@pytest.mark.parametrize("rows,match", [
    ([np.zeros((3, 4))] * 2, "2 rows for 3 clip ids"),
    ([np.zeros((3, 4))] * 4, "more rows than the 3 clip ids"),
    ([np.zeros((3, 4)), np.zeros((2, 4)), np.zeros((3, 4))], r"row 1 \(clip 'b'\) has shape \(2, 4\)"),
])
def test_a_bad_stream_leaves_the_old_store_untouched(tmp_path, rows, match):
    d = tmp_path / "st"
    write_store(d, "x", ["a", "b", "c"], np.ones((3, 3, 4)), {})
    before = (d / "features.npy").read_bytes()
    with pytest.raises(FeatureStoreError, match=match):
        write_store_rows(d, "x", ["a", "b", "c"], iter(rows), 3, 4, {})
    assert (d / "features.npy").read_bytes() == before and (d / "meta.json").exists()
    assert _no_temp(d)


def test_an_exception_from_the_rows_propagates_and_cleans_up(tmp_path):
    def rows():
        yield np.zeros((2, 2))
        raise ValueError("row check failed")

    with pytest.raises(ValueError, match="row check failed"):
        write_store_rows(tmp_path, "x", ["a", "b"], rows(), 2, 2, {})
    assert _no_temp(tmp_path) and not (tmp_path / "features.npy").exists()


def test_duplicate_or_no_ids(tmp_path):
    with pytest.raises(FeatureStoreError, match="duplicate"):
        write_store_rows(tmp_path, "x", ["a", "a"], iter([]), 1, 1, {})
    with pytest.raises(FeatureStoreError, match="no clips"):
        write_store_rows(tmp_path, "x", [], iter([]), 1, 1, {})
