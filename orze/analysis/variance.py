"""Variance decomposition of the metric over architecture choices.

One-way ANOVA over architecture groups (backbone x temporal encoder by default), using only groups
with at least `min_runs` runs:  eta^2 = SS_between / SS_total, F = MS_between / MS_within, p from the
F distribution. eta^2 is the share of the metric's variance explained by which architecture was run;
1 - eta^2 is what everything else (training knobs, seeds, noise) explains inside an architecture.

Because campaigns over-sample the winning architecture, a balanced re-subsample draws the same
number of runs from each group (the smallest group's size) many times and reports the mean eta^2.
The two-way ANOVA (least squares, sequential sums of squares: backbone, then encoder, then their
interaction) splits the variance into the backbone, encoder, interaction and residual shares, which
add to 1 even in unbalanced campaigns with cells never run. Within one backbone, the encoder's
share is the one-way eta^2 of the encoder among that backbone's runs.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from orze.analysis.frame import AnalysisError, cell_labels

ARCH_FACTORS = ("backbone", "temporal_encoder")
MIN_GROUP_RUNS = 10


def one_way(values: Sequence[float], groups: Sequence) -> dict:
    """eta^2, F and p of a one-way ANOVA of `values` by `groups` (at least two groups)."""
    y = np.asarray(values, dtype=float)
    codes, _ = pd.factorize(np.asarray(groups, dtype=object))
    counts = np.bincount(codes)
    means = np.bincount(codes, weights=y) / counts
    k, n = len(counts), len(y)
    if k < 2:
        raise AnalysisError(f"ANOVA: {k} group(s); need at least two groups to compare")
    if n <= k:
        raise AnalysisError(f"ANOVA: {n} runs in {k} groups; need more runs than groups")
    grand = y.mean()
    ss_total = float(np.sum((y - grand) ** 2))
    ss_between = float(np.sum(counts * (means - grand) ** 2))
    ss_within = max(ss_total - ss_between, 0.0)
    df_b, df_w = k - 1, n - k
    if ss_total == 0:
        return {"groups": k, "runs": n, "eta2": None, "F": None, "p": None,
                "ss_between": 0.0, "ss_total": 0.0}
    f = (ss_between / df_b) / (ss_within / df_w) if ss_within > 0 else math.inf
    p = float(stats.f.sf(f, df_b, df_w)) if math.isfinite(f) else 0.0
    return {"groups": k, "runs": n, "eta2": ss_between / ss_total, "F": float(f), "p": p,
            "df_between": df_b, "df_within": df_w, "ss_between": ss_between, "ss_total": ss_total}


def eligible(done: pd.DataFrame, factors: Sequence[str] = ARCH_FACTORS,
             min_runs: int = MIN_GROUP_RUNS) -> tuple[pd.DataFrame, pd.Series]:
    """The runs in groups (combinations of `factors`) with at least `min_runs` runs, and the labels."""
    missing = [f for f in factors if f not in done.columns]
    if missing:
        raise AnalysisError(f"ANOVA: the leaderboard has no {', '.join(missing)} column "
                            "(these runs' configs lack that dimension)")
    labels = cell_labels(done, list(factors))
    counts = labels.value_counts()
    keep = labels.isin(counts[counts >= min_runs].index)
    return done.loc[keep], labels[keep]


def architecture_anova(done: pd.DataFrame, factors: Sequence[str] = ARCH_FACTORS,
                       min_runs: int = MIN_GROUP_RUNS) -> dict:
    sub, labels = eligible(done, factors, min_runs)
    if labels.nunique() < 2:
        raise AnalysisError(
            f"ANOVA: {labels.nunique()} {' × '.join(factors)} group(s) have at least {min_runs} runs; "
            "need two or more (run more experiments per architecture)")
    out = one_way(sub["metric"].to_numpy(), labels.to_numpy())
    out["factors"] = list(factors)
    out["min_runs"] = min_runs
    out["excluded_runs"] = int(len(done) - len(sub))
    return out


def balanced_eta2(done: pd.DataFrame, factors: Sequence[str] = ARCH_FACTORS,
                  min_runs: int = MIN_GROUP_RUNS, repeats: int = 200, seed: int = 0) -> dict:
    """Mean (and 2.5/97.5 percentiles of) eta^2 over balanced re-subsamples of the eligible groups."""
    sub, labels = eligible(done, factors, min_runs)
    if labels.nunique() < 2:
        raise AnalysisError("balanced ANOVA: fewer than two eligible groups")
    rng = np.random.default_rng(seed)
    y = sub["metric"].to_numpy()
    by_group = [np.flatnonzero(labels.to_numpy() == g) for g in sorted(labels.unique())]
    size = min(len(ix) for ix in by_group)
    etas = []
    for _ in range(repeats):
        pick = np.concatenate([rng.choice(ix, size, replace=False) for ix in by_group])
        e = one_way(y[pick], labels.to_numpy()[pick])["eta2"]
        if e is not None:
            etas.append(e)
    if not etas:
        return {"per_group": size, "groups": len(by_group), "eta2_mean": None}
    arr = np.asarray(etas)
    return {"per_group": int(size), "groups": len(by_group), "repeats": repeats,
            "eta2_mean": float(arr.mean()), "eta2_lo": float(np.percentile(arr, 2.5)),
            "eta2_hi": float(np.percentile(arr, 97.5))}


def _rss_rank(design: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    return float(resid @ resid), int(rank)


def two_way(done: pd.DataFrame, a: str = "backbone", b: str = "temporal_encoder",
            min_runs: int = MIN_GROUP_RUNS) -> dict:
    """Two-way ANOVA with interaction: each term's share of SS_total, F and p.

    Sequential (type I) sums of squares in the order `a`, `b`, `a:b`: the first factor's share is its
    own one-way eta^2, the second's is what it adds given the first, the interaction what the cell
    means add beyond both. The shares plus the residual add to exactly 1 even when the design is
    unbalanced or some cells were never run (where type II/III sums of squares are ill-defined).
    Computed by least squares on indicator designs; equal to statsmodels' anova_lm(typ=1)."""
    sub, _ = eligible(done, (a, b), min_runs)
    y = sub["metric"].to_numpy(float)
    fa = sub[a].astype(str).to_numpy()
    fb = sub[b].astype(str).to_numpy()
    if len(set(fa)) < 2 or len(set(fb)) < 2:
        raise AnalysisError(f"two-way ANOVA: need at least two {a} and two {b} values among "
                            f"groups with {min_runs}+ runs")
    ones = np.ones((len(y), 1))
    da = pd.get_dummies(fa, drop_first=True).to_numpy(float)
    db = pd.get_dummies(fb, drop_first=True).to_numpy(float)
    cells = pd.get_dummies(pd.Series(fa) + "\x00" + pd.Series(fb)).to_numpy(float)
    rss0, r0 = _rss_rank(ones, y)
    rss_a, ra = _rss_rank(np.hstack([ones, da]), y)
    rss_ab, rab = _rss_rank(np.hstack([ones, da, db]), y)
    rss_cell, rc = _rss_rank(cells, y)
    n = len(y)
    df_res = n - rc
    ms_res = rss_cell / df_res if df_res > 0 else math.nan
    terms = {a: (rss0 - rss_a, ra - r0), b: (rss_a - rss_ab, rab - ra),
             f"{a}:{b}": (rss_ab - rss_cell, rc - rab)}
    out = {"runs": int(n), "ss_total": rss0, "order": [a, b, f"{a}:{b}"], "terms": {}}
    for name, (ss, df) in terms.items():
        ss = max(ss, 0.0)
        f = (ss / df) / ms_res if df > 0 and ms_res and ms_res > 0 else None
        out["terms"][name] = {"share": ss / rss0 if rss0 > 0 else None, "df": float(df), "F": f,
                              "p": float(stats.f.sf(f, df, df_res)) if f is not None else None}
    out["terms"]["residual"] = {"share": rss_cell / rss0 if rss0 > 0 else None, "df": float(df_res),
                                "F": None, "p": None}
    return out


def within(done: pd.DataFrame, outer: str = "backbone", inner: str = "temporal_encoder",
           min_runs: int = MIN_GROUP_RUNS) -> dict[str, dict]:
    """For each value of `outer`, the one-way eta^2 of `inner` among that value's runs
    (groups with `min_runs`+ runs; values with fewer than two such groups are skipped)."""
    out: dict[str, dict] = {}
    if outer not in done.columns or inner not in done.columns:
        return out
    for value, part in done.groupby(done[outer].astype(str), sort=True):
        labels = part[inner].astype(str)
        counts = labels.value_counts()
        keep = labels.isin(counts[counts >= min_runs].index)
        if labels[keep].nunique() < 2:
            continue
        out[value] = one_way(part.loc[keep, "metric"].to_numpy(), labels[keep].to_numpy())
    return out


def decompose(done: pd.DataFrame, min_runs: int = MIN_GROUP_RUNS, seed: int = 0) -> dict:
    """Every decomposition at once; a part that the data cannot support says why instead."""
    out: dict = {}
    for key, fn in (("one_way", lambda: architecture_anova(done, min_runs=min_runs)),
                    ("balanced", lambda: balanced_eta2(done, min_runs=min_runs, seed=seed)),
                    ("two_way", lambda: two_way(done, min_runs=min_runs)),
                    ("within_backbone", lambda: within(done, min_runs=min_runs))):
        try:
            out[key] = fn()
        except AnalysisError as e:
            out[key] = {"error": str(e)}
    return out
