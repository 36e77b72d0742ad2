"""The warm worker's feature cache: same tensors as a fresh load, reused while the files are
unchanged, reloaded when they change, bounded, and never altered by an experiment."""

import itertools

import numpy as np
import pytest
import torch
import yaml

from orze.features.store import open_store, write_store
from orze.space import check_idea, load_space
from orze.worker.cache import FeatureCache
from orze.worker.data import load_experiment_data
from orze.worker.train import run_experiment
from tests.conftest import make_research_dir

_ids = itertools.count()


@pytest.fixture()
def layout(tmp_path):
    return make_research_dir(tmp_path / "r", clips=60, frames=8)


def test_cached_load_equals_fresh_load_and_hits(layout):
    cache = FeatureCache()
    dev = torch.device("cpu")
    fresh = load_experiment_data(layout, ["vjepa2", "dinov2_b"], 6, dev)
    first = load_experiment_data(layout, ["vjepa2", "dinov2_b"], 6, dev, cache)
    second = load_experiment_data(layout, ["vjepa2"], 10, dev, cache)   # other seq_len: same cache entry
    assert first.cache_hits == [False, False] and second.cache_hits == [True]
    for split in ("train", "val", "test"):
        for a, b in zip(fresh.splits[split].x, first.splits[split].x):
            assert torch.equal(a, b)
        assert torch.equal(fresh.splits[split].mask, first.splits[split].mask)
        assert second.splits[split].x[0].shape[1] == 10          # padded to 10 from 8 frames
        assert fresh.info["split_hashes"][split] == second.info["split_hashes"][split]
    assert cache.stats.hits == 2 and cache.stats.misses == 3    # clips table + 2 backbones; then 2 hits


def test_rewritten_store_is_reloaded_not_served_stale(layout):
    cache = FeatureCache()
    dev = torch.device("cpu")
    before = load_experiment_data(layout, ["vjepa2"], 8, dev, cache)
    store = open_store(layout.backbone_dir("vjepa2"))
    changed = np.asarray(store.array, dtype=np.float32) * 2 + 1
    write_store(layout.backbone_dir("vjepa2"), "vjepa2", store.ids, changed, {"model_id": "x"})
    after = load_experiment_data(layout, ["vjepa2"], 8, dev, cache)
    assert after.cache_hits == [False]
    fresh = load_experiment_data(layout, ["vjepa2"], 8, dev)
    assert torch.equal(after.splits["val"].x[0], fresh.splits["val"].x[0])
    assert not torch.equal(after.splits["val"].x[0], before.splits["val"].x[0])


def test_bound_evicts_least_recently_used():
    cache = FeatureCache(max_mb=1.0)
    mb = 256 * 1024 // 4   # float32 elements in 0.25 MiB
    a = cache.get(("a",), lambda: torch.zeros(mb * 2))   # 0.5 MiB
    cache.get(("b",), lambda: torch.zeros(mb * 2))
    cache.get(("a",), lambda: pytest.fail("a is cached"))  # a is now the most recent
    cache.get(("c",), lambda: torch.zeros(mb * 2))          # evicts b, not a
    assert set(cache.entries) == {("a",), ("c",)} and cache.stats.evictions == 1
    cache.get(("big",), lambda: torch.zeros(mb * 8))         # larger than the bound: not kept
    assert ("big",) not in cache.entries and cache.size_mb <= 1.0
    assert a is cache.entries[("a",)][0]


def _run(layout, overrides, cache):
    space = load_space(layout.space_config)
    check = check_idea(space, overrides)
    assert check.ok, check.errors
    run_dir = layout.run_dir(f"c{next(_ids):05d}")
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(check.config))
    return run_experiment(run_dir, layout, "cpu", cache=cache, worker={"mode": "test"})


def test_experiments_through_the_cache_match_fresh_ones_and_leave_it_unchanged(layout):
    cfg = {"epochs": 2, "d_model": 16, "num_heads": 2, "seq_len": 4, "mixup_alpha": 0.4,
           "feature_noise": 0.1, "seed": 5}
    cache = FeatureCache()
    _run(layout, {**cfg, "seed": 1, "pooling": "max"}, cache)   # warms the cache with another config
    snapshot = {k: [t.clone() for t in v[0][0].values()] for k, v in cache.entries.items()
                if k[0] == "backbone"}
    cached = _run(layout, cfg, cache)
    fresh = _run(layout, cfg, None)
    assert cached["timings"]["feature_cache"] == "hit" and fresh["timings"]["feature_cache"] == "none"
    assert cached["history"] == [{**h, "seconds": c["seconds"]} for h, c in zip(fresh["history"], cached["history"])]
    assert cached["val_ap"] == fresh["val_ap"] and cached["test_ap"] == fresh["test_ap"]
    for k, tensors in snapshot.items():   # augmentation and batching copied, never wrote in place
        for before, now in zip(tensors, cache.entries[k][0][0].values()):
            assert torch.equal(before, now)


def test_store_reads_a_contiguous_split_as_one_slice_and_scattered_rows_by_gather(layout):
    from orze.features.store import read_clips
    from orze.worker.data import split_ids

    store = open_store(layout.backbone_dir("vjepa2"))
    ids = split_ids(layout.clips_csv)
    rows = store.rows(ids["val"])
    assert np.all(np.diff(rows) == 1)            # the demo writer groups rows by split
    assert np.array_equal(store.read(rows), np.asarray(store.array[rows], dtype=np.float32))
    scattered = rows[::-1].copy()
    assert np.array_equal(store.read(scattered), np.asarray(store.array[scattered], dtype=np.float32))
    assert len(read_clips(layout.clips_csv)) == len(store.ids)
