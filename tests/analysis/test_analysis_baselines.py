"""Random-order replay matches its exact expectation; TPE replay draws from the pool without
replacement and exploits a clear signal."""

from math import comb

import numpy as np
import pandas as pd
import pytest

from orze.analysis.baselines import baselines, policy_table, random_replay, tpe_order, tpe_replay


def test_random_replay_matches_the_exact_expected_running_max():
    pool = np.array([0.1, 0.5, 0.2, 0.9, 0.4, 0.7, 0.3, 0.8])
    v = np.sort(pool)
    N = len(pool)
    exact = []
    for n in range(1, N + 1):
        # P(max of the first n = v_k) = C(k-1, n-1) / C(N, n)
        exact.append(sum(v[k - 1] * comb(k - 1, n - 1) / comb(N, n) for k in range(n, N + 1)))
    got = random_replay(pool, permutations=4000, seed=0)
    assert got == pytest.approx(exact, abs=0.01)
    assert got[-1] == pytest.approx(pool.max())


def _pool(n=300, seed=0):
    rng = np.random.default_rng(seed)
    bb = rng.choice(["good", "bad1", "bad2", "bad3", "bad4"], n)
    lr = 10 ** rng.uniform(-5, -2, n)
    metric = np.where(bb == "good", 0.8, 0.4) + rng.normal(0, 0.02, n)
    return pd.DataFrame({"backbone": bb, "learning_rate": lr, "pooling": rng.choice(["mean", "max"], n),
                         "metric": metric, "seq": range(n)})


def test_tpe_replay_uses_each_pool_run_once_and_finds_the_good_region():
    pool = _pool()
    curve = tpe_replay(pool, ["backbone", "learning_rate", "pooling"], trials=len(pool), seed=1)
    assert len(curve) == len(pool)
    assert curve[-1] == pytest.approx(pool["metric"].max())  # all drawn: the pool's max is reached
    short = tpe_replay(pool, ["backbone", "learning_rate", "pooling"], trials=60, seed=1)
    assert np.all(np.diff(short) >= 0)
    assert set(np.round(short, 12)) <= set(np.round(pool["metric"], 12))


def test_tpe_concentrates_on_the_good_region():
    pool = _pool(400, seed=2)
    picks = tpe_order(pool, ["backbone", "learning_rate", "pooling"], trials=60, seed=3)
    assert len(set(picks.tolist())) == 60
    good = (pool["backbone"].to_numpy()[picks] == "good")
    # uniform picks would hit 'good' about 20% of the time; after its start-up trials TPE exploits it
    assert good[20:].mean() > 0.4  # twice the uniform rate


def test_policy_table_checkpoints_and_alpha():
    curves = {"a": 0.9 - 0.3 * np.arange(1, 601) ** -0.5, "short": np.linspace(0.1, 0.5, 60)}
    rows = {r["policy"]: r for r in policy_table(curves, upper=1.0)}
    assert rows["a"]["at_50"] == pytest.approx(0.9 - 0.3 * 50 ** -0.5)
    assert rows["a"]["at_500"] == pytest.approx(0.9 - 0.3 * 500 ** -0.5)
    assert rows["a"]["alpha"] == pytest.approx(0.5, abs=0.01)
    assert rows["short"]["at_100"] is None and rows["short"]["at_500"] is None


def test_baselines_summary_on_a_pool():
    out = baselines(_pool(120), ["backbone", "learning_rate"], permutations=100, tpe_trials=30, seed=0)
    names = [r["policy"] for r in out["table"]]
    assert names == ["observed", "random", "tpe"]
    assert out["tpe_trials"] == 30 and len(out["curves"]["tpe"]) == 30
