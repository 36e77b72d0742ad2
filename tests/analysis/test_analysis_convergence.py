"""Convergence fits recover known parameters and refuse data that cannot support them."""

import math

import numpy as np
import pytest

from orze.analysis import AnalysisError
from orze.analysis.baselines import random_replay
from orze.analysis.convergence import best_so_far, convergence, fit_curve, metric_upper, permutation_null, select_model


def test_best_so_far_is_running_max():
    assert best_so_far([0.3, 0.1, 0.5, 0.4, 0.6]).tolist() == [0.3, 0.3, 0.5, 0.5, 0.6]


def test_power_law_parameters_recovered_from_a_known_curve():
    rng = np.random.default_rng(0)
    n = np.arange(1, 2001)
    curve = 0.92 - 0.3 * n ** -0.45 + rng.normal(0, 0.001, n.size)
    fits = fit_curve(curve, upper=1.0)
    p = fits["power"]
    assert p.ok
    assert p.params["alpha"] == pytest.approx(0.45, abs=0.02)
    assert p.params["a_inf"] == pytest.approx(0.92, abs=0.005)
    assert p.params["b"] == pytest.approx(0.3, abs=0.02)
    # the true alpha lies within a few standard errors
    assert abs(p.params["alpha"] - 0.45) < 5 * p.stderr["alpha"]
    assert p.r2 > 0.99
    assert select_model(fits) == "power"


def test_aic_prefers_the_generating_model():
    n = np.arange(1, 800)
    rng = np.random.default_rng(1)
    exp_curve = 0.9 - 0.4 * np.exp(-0.02 * n) + rng.normal(0, 0.002, n.size)
    assert select_model(fit_curve(exp_curve, 1.0)) == "exponential"
    log_curve = 0.5 + 0.03 * np.log(n) + rng.normal(0, 0.002, n.size)
    assert select_model(fit_curve(log_curve, math.inf)) == "logarithmic"


def test_asymptote_respects_the_metric_bound():
    n = np.arange(1, 500)
    curve = 1.3 - 0.5 * n ** -0.3  # would want a_inf = 1.3 > 1
    p = fit_curve(curve, upper=1.0)["power"]
    assert p.ok and p.params["a_inf"] <= 1.0 + 1e-9
    assert metric_upper([0.2, 0.9]) == 1.0
    assert metric_upper([0.2, 3.5]) == math.inf


def test_random_order_of_a_power_tailed_pool_converges_with_its_exponent():
    # gap = 1 - metric has P(gap <= g) = g^2, so the best of n random draws has gap ~ n^(-1/2)
    rng = np.random.default_rng(2)
    pool = 1 - np.sqrt(rng.random(20000))
    curve = random_replay(pool, permutations=200, seed=3)[:1000]
    p = fit_curve(curve, upper=1.0)["power"]
    assert p.params["alpha"] == pytest.approx(0.5, abs=0.05)
    assert p.params["a_inf"] == pytest.approx(1.0, abs=0.01)


def test_permutation_null_and_full_convergence_summary():
    rng = np.random.default_rng(4)
    y = rng.random(120)
    out = convergence(y, permutations=30, seed=0)
    assert out["runs"] == 120 and out["best"] == pytest.approx(y.max())
    assert set(out["fits"]) == {"power", "exponential", "logarithmic"}
    assert out["selected"] in out["fits"]
    null = out["null"]
    assert null["fitted"] == 30 and 0 < null["r2_mean"] <= null["r2_p95"] <= 1
    # same seed, same null
    assert permutation_null(y, 30, seed=0, upper=1.0) == null


def test_too_few_runs_and_flat_curves_are_clear_errors():
    with pytest.raises(AnalysisError, match="at least"):
        convergence([0.5, 0.6, 0.7])
    with pytest.raises(AnalysisError, match="still the best"):
        convergence([0.9] + [0.1] * 20)
