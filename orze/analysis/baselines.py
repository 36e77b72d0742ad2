"""Baselines on the same pool of finished experiments.

- Random-order replay: the pool's results in a random order, the best-so-far averaged over many
  permutations (default 1,000). This is what uniform sampling *from this pool* would have achieved.
- TPE replay: Optuna's TPE sampler searches the pool as an oracle. Each trial's suggestion (one value
  per configuration dimension) is mapped to the closest not-yet-used finished configuration
  (mismatched categorical values count 1 each, numeric differences in units of that dimension's
  range in the pool, on a log scale where the space marks the dimension `log: true`), whose metric is told
  back to the study. Like the random replay it draws without replacement from the pool, so both
  inherit the pool's selection bias (documented in docs/analysis.md).

`policy_table` reports the best metric after 50/100/500 runs and the power-law alpha per policy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from orze.analysis.convergence import MIN_FIT_RUNS, best_so_far, fit_curve, metric_upper
from orze.analysis.frame import AnalysisError

CHECKPOINTS = (50, 100, 500)
MAX_LEVELS = 64


def random_replay(metric: Sequence[float], permutations: int = 1000, seed: int = 0,
                  chunk: int = 64) -> np.ndarray:
    """Mean best-so-far over `permutations` random orders of the results (memory: chunk x N)."""
    y = np.asarray(metric, dtype=float)
    if y.size == 0:
        raise AnalysisError("random replay: no finished runs")
    rng = np.random.default_rng(seed)
    total = np.zeros(y.size)
    done = 0
    while done < permutations:
        k = min(chunk, permutations - done)
        order = np.argsort(rng.random((k, y.size)), axis=1)
        total += np.maximum.accumulate(y[order], axis=1).sum(axis=0)
        done += k
    return total / permutations


def _encode(pool: pd.DataFrame, dims: list[str], log_dims: set[str] | None = None) -> dict:
    """Per dimension the TPE distribution it gets: ('cat', names) or ('num', lo, hi, log).
    Skipped: dimensions constant in the pool, numeric ones missing in some runs (conditional on
    another choice, e.g. focal_gamma; that choice itself is searched), and categorical ones with
    more than MAX_LEVELS values (free text, not a design choice)."""
    spec = {}
    for d in dims:
        col = pool[d]
        num = pd.to_numeric(col, errors="coerce")
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            if num.isna().any():
                continue
            v = num.to_numpy(float)
            lo, hi = float(v.min()), float(v.max())
            if hi <= lo:
                continue  # constant in the pool: tells TPE nothing
            # the space says which ranges are log-scale; without it, positive ranges over 3 decades
            use_log = lo > 0 and (d in log_dims if log_dims is not None else hi / lo > 1000)
            spec[d] = ("num", lo, hi, use_log)
        else:
            labels = col.astype(object).where(col.notna(), "-").astype(str)
            names = sorted(labels.unique())
            if 2 <= len(names) <= MAX_LEVELS:
                spec[d] = ("cat", names)
    return spec


def _scaled(value: np.ndarray, lo: float, hi: float, use_log: bool) -> np.ndarray:
    if use_log:
        return (np.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (value - lo) / (hi - lo)


def tpe_replay(pool: pd.DataFrame, dims: Sequence[str], trials: int = 500, seed: int = 0,
               log_dims: set[str] | None = None) -> np.ndarray:
    """Best-so-far of a TPE search over the pool (at most len(pool) trials)."""
    picks = tpe_order(pool, dims, trials, seed, log_dims)
    return best_so_far(pool["metric"].to_numpy(float)[picks])


def tpe_order(pool: pd.DataFrame, dims: Sequence[str], trials: int = 500, seed: int = 0,
              log_dims: set[str] | None = None) -> np.ndarray:
    """The positions (into `pool`) of the runs a TPE search picks, in order, without repeats."""
    import optuna

    dims = [d for d in dims if d in pool.columns]
    spec = _encode(pool, dims, log_dims)
    if not spec:
        raise AnalysisError("TPE replay: no configuration dimension varies across the pool")
    y = pool["metric"].to_numpy(float)
    trials = min(trials, len(pool))
    # The pool in the same encoding as suggestions: categorical codes and scaled numbers.
    cat_dims = [d for d, s in spec.items() if s[0] == "cat"]
    num_dims = [d for d, s in spec.items() if s[0] == "num"]
    cat_codes = np.stack([pd.Categorical(pool[d].astype(object).where(pool[d].notna(), "-").astype(str),
                                         categories=spec[d][1]).codes for d in cat_dims], axis=1) \
        if cat_dims else np.zeros((len(pool), 0), int)
    num_vals = np.stack([_scaled(pd.to_numeric(pool[d]).to_numpy(float), *spec[d][1:]) for d in num_dims],
                        axis=1) if num_dims else np.zeros((len(pool), 0))
    used = np.zeros(len(pool), bool)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    dists = {}
    for d, s in spec.items():
        if s[0] == "cat":
            dists[d] = optuna.distributions.CategoricalDistribution(s[1])
        else:
            dists[d] = optuna.distributions.FloatDistribution(s[1], s[2], log=s[3])
    rng = np.random.default_rng(seed)
    picks = np.empty(trials, dtype=int)
    for t in range(trials):
        trial = study.ask(dists)
        want_cat = np.array([spec[d][1].index(trial.params[d]) for d in cat_dims], int)
        want_num = np.array([_scaled(np.array(trial.params[d]), *spec[d][1:]) for d in num_dims], float)
        dist = (cat_codes != want_cat).sum(axis=1) + np.abs(num_vals - want_num).sum(axis=1)
        dist = np.where(used, np.inf, dist)
        best = np.flatnonzero(dist == dist.min())
        pick = int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])
        used[pick] = True
        picks[t] = pick
        # Teach TPE the configuration actually evaluated, not the point it asked for: the asked
        # trial is closed as failed (TPE ignores those) and the evaluated one added in its place.
        params = {d: spec[d][1][cat_codes[pick, j]] for j, d in enumerate(cat_dims)}
        for d in num_dims:
            params[d] = float(np.clip(float(pd.to_numeric(pool[d].iloc[pick])), spec[d][1], spec[d][2]))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=float(y[pick])))
    return picks


def policy_table(curves: dict[str, np.ndarray], upper: float,
                 checkpoints: Sequence[int] = CHECKPOINTS) -> list[dict]:
    """One row per policy: best after each checkpoint (None past the curve's end), alpha, R^2."""
    rows = []
    for name, curve in curves.items():
        curve = np.asarray(curve, float)
        row = {"policy": name, "runs": int(curve.size)}
        for c in checkpoints:
            row[f"at_{c}"] = float(curve[c - 1]) if curve.size >= c else None
        fit = fit_curve(curve, upper)["power"] if curve.size >= MIN_FIT_RUNS and curve[-1] > curve[0] else None
        row["alpha"] = fit.params.get("alpha") if fit and fit.ok else None
        row["r2"] = fit.r2 if fit and fit.ok else None
        rows.append(row)
    return rows


def baselines(done: pd.DataFrame, dims: Sequence[str], permutations: int = 1000,
              tpe_trials: int = 500, seed: int = 0, log_dims: set[str] | None = None) -> dict:
    """Observed order vs random replay vs TPE replay, on the same pool; JSON-ready."""
    y = done["metric"].to_numpy(float)
    if y.size < MIN_FIT_RUNS:
        raise AnalysisError(f"baselines: {y.size} finished runs; need at least {MIN_FIT_RUNS}")
    upper = metric_upper(y)
    curves = {"observed": best_so_far(y), "random": random_replay(y, permutations, seed)}
    tpe_error = None
    if tpe_trials > 0:
        try:
            curves["tpe"] = tpe_replay(done, dims, tpe_trials, seed, log_dims)
        except AnalysisError as e:
            tpe_error = str(e)
    return {"table": policy_table(curves, upper), "permutations": permutations,
            "tpe_trials": int(min(tpe_trials, y.size)), "tpe_error": tpe_error,
            "curves": {k: v.tolist() for k, v in curves.items()}}
