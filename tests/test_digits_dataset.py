"""orze.datasets.digits: the real digits read as clips, and its pooled baseline."""

import numpy as np

from orze.datasets import digits


def test_digits_as_clips_with_a_stratified_split():
    d = digits.load(seed=0)
    assert len(d.ids) == 1797 and all(c.shape == (8, 8) for c in d.clips)
    assert sorted(set(d.labels.tolist())) == list(range(10))
    counts = {s: d.splits.count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 1078, "val": 359, "test": 360}
    for s in ("train", "val", "test"):   # every class in every split
        assert len(set(d.labels[np.asarray(d.splits) == s].tolist())) == 10


def test_ragged_variant_is_a_parameter():
    d = digits.load(seed=1, lengths=(4, 8))
    lengths = {c.shape[0] for c in d.clips}
    assert lengths <= set(range(4, 9)) and len(lengths) == 5
    full = digits.load(seed=1)
    assert all(np.array_equal(c, f[: c.shape[0]]) for c, f in zip(d.clips, full.clips))   # prefixes


def test_pooled_baseline_is_a_real_fit():
    b = digits.pooled_baseline(digits.load())
    assert 0.5 < b["test"] < 0.9 and 0.5 < b["val"] < 0.9   # pooling over rows loses their order

