"""Entropy and Jensen-Shannon divergence agree with scipy; innovation decay has the known exponent."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from orze.analysis import AnalysisError
from orze.analysis.exploration import (
    components_from_space,
    entropy_bits,
    fit_decay,
    innovation,
    innovation_rate,
    jsd_bits,
    jsd_over_time,
    sliding_entropy,
)
from orze.space import load_space


def test_entropy_agrees_with_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        c = rng.integers(0, 20, 12)
        assert entropy_bits(c) == pytest.approx(entropy(c, base=2))


def test_jsd_agrees_with_scipy_and_generalises():
    rng = np.random.default_rng(1)
    p, q = rng.random(8), rng.random(8)
    assert jsd_bits([p, q]) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert jsd_bits([[1, 0], [0, 1]]) == pytest.approx(1.0)
    assert jsd_bits([p, p]) == pytest.approx(0.0, abs=1e-12)
    r = rng.random(8)
    ps = [v / v.sum() for v in (p, q, r)]
    expected = entropy(np.mean(ps, axis=0), base=2) - np.mean([entropy(v, base=2) for v in ps])
    assert jsd_bits([p, q, r]) == pytest.approx(expected)


def test_components_come_from_the_space_groups():
    comps = components_from_space(load_space("configs/space.yaml"))
    assert comps["architecture"] == ["backbone", "temporal_encoder", "pooling"]
    assert comps["training"] == ["batch_size", "scheduler", "seq_len", "epochs"]


def _runs(backbones, encoders=None, agents=None):
    n = len(backbones)
    return pd.DataFrame({"backbone": backbones, "temporal_encoder": encoders or ["z"] * n,
                         "pooling": ["mean"] * n, "batch_size": [32] * n, "scheduler": ["cosine"] * n,
                         "seq_len": [16] * n, "epochs": [10] * n, "agent": agents or ["a"] * n,
                         "metric": np.linspace(0, 1, n), "seq": range(n)})


def test_sliding_entropy_exploit_then_explore():
    # 40 runs of one cell (0 bits) then 40 spread evenly over 4 cells (2 bits)
    bb = ["v"] * 40 + ["a", "b", "c", "d"] * 10
    ent = sliding_entropy(_runs(bb), window=40, step=40)
    assert ent["architecture"].iloc[0] == 0.0 and ent["architecture"].iloc[-1] == pytest.approx(2.0)
    assert (ent["training"] == 0).all()
    assert (ent["end"] - ent["start"] == 40).all()


def test_jsd_over_time_identical_then_disjoint_agents():
    same = ["x", "y"] * 20
    agents_same = ["a", "a", "b", "b"] * 10
    disjoint = ["p" if i % 2 == 0 else "q" for i in range(40)]
    agents_dis = ["a" if i % 2 == 0 else "b" for i in range(40)]
    df = _runs(same + disjoint, agents=agents_same + agents_dis)
    out = jsd_over_time(df, window=40, step=40, min_agent_runs=5)
    assert out["jsd"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert out["jsd"].iloc[-1] == pytest.approx(1.0)
    with pytest.raises(AnalysisError, match="fewer than two agents"):
        jsd_over_time(_runs(same))


def test_innovation_indicator_and_rate():
    ind = innovation([0.1, 0.3, 0.2, 0.5, 0.5, 0.6])
    assert ind.tolist() == [1, 1, 0, 1, 0, 1]
    assert innovation_rate([1, 0, 0, 1], window=2).tolist() == [1.0, 0.5, 0.0, 0.5]


def test_innovation_decay_of_random_orders_has_beta_one():
    rng = np.random.default_rng(5)
    ns, ev = [], []
    for _ in range(300):
        i = innovation(rng.random(300))
        ns.append(np.arange(2, 301))
        ev.append(i[1:])
    fit = fit_decay(np.concatenate(ns), np.concatenate(ev))
    assert fit["ok"]
    assert fit["beta"] == pytest.approx(1.0, abs=0.06)
    assert fit["c"] == pytest.approx(1.0, abs=0.15)
    assert fit["beta_se"] < 0.05
