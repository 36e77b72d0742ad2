"""The noise floor: replicated configurations and whether a new best is real.

Two runs are replicates when their canonical configurations agree on every dimension except `seed`
(`replicate_key`). `replicate_summary(frame)` gives mean, std (ddof=1), min, max and n of the
validation metric for every configuration run two or more times. The pooled within-configuration
standard deviation over those groups is the campaign's noise level sigma.

A new best that beats the previous best by less than z * sqrt(2) * sigma (the spread of a
difference of two noisy runs; z = 1.96 by default) is flagged as within noise.

For the leaderboard display: `replicate_summary(frame)` takes the frame of
orze.store.leaderboard.rows_to_frame (any statuses; only done runs count) and returns one row per
replicated configuration with `ids` (its run ids); `replicate_stats(frame)` maps each run id to its
configuration's (n, mean, std) for a "mean ± std (n)" column.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from orze.analysis.frame import METRIC_SIGN_ATTR, config_columns, done_runs

SEED = "seed"
Z_95 = 1.96


def _jsonable(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def replicate_key(frame: pd.DataFrame, dims: Sequence[str] | None = None) -> pd.Series:
    """A 16-hex-digit hash per row of its configuration without the seed (equal for replicates)."""
    cols = sorted(c for c in config_columns(frame, dims) if c != SEED)
    if not cols:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    # Values as text (configs are canonical, so equal settings print alike); missing is 'None'.
    text = frame[cols].astype(object).where(frame[cols].notna(), None).astype(str)
    hashed = pd.util.hash_pandas_object(text, index=False).to_numpy(np.uint64)
    return pd.Series([f"{h:016x}" for h in hashed], index=frame.index, dtype=object)


def replicate_summary(frame: pd.DataFrame, dims: Sequence[str] | None = None,
                      min_n: int = 2) -> pd.DataFrame:
    """One row per configuration (ignoring seed) with at least `min_n` finished runs, best mean
    first. Columns: key, n, mean, std, min, max, ids (list, completion order), first_id."""
    done = done_runs(frame)
    cols = ["key", "n", "mean", "std", "min", "max", "ids", "first_id"]
    if len(done) == 0:
        return pd.DataFrame(columns=cols)
    done = done.assign(_key=replicate_key(done, dims))
    counts = done["_key"].value_counts()
    done = done[done["_key"].isin(counts[counts >= min_n].index)]
    if len(done) == 0:
        return pd.DataFrame(columns=cols)
    g = done.groupby("_key", sort=False)
    stats_ = g["metric"].agg(["count", "mean", "std", "min", "max"]).reset_index()
    ids = g["id"].agg(list).reset_index()
    out = stats_.merge(ids, on="_key").rename(columns={"_key": "key", "count": "n", "id": "ids"})
    out = out[out["n"] >= min_n].copy()
    out["first_id"] = out["ids"].map(lambda x: x[0])
    out["n"] = out["n"].astype(int)
    out = out.sort_values(["mean", "key"], ascending=[False, True])[cols].reset_index(drop=True)
    out.attrs[METRIC_SIGN_ATTR] = done.attrs.get(METRIC_SIGN_ATTR, 1.0)   # mean/min/max are oriented
    return out


def replicate_stats(frame: pd.DataFrame, dims: Sequence[str] | None = None) -> dict[str, dict]:
    """Run id -> {"n", "mean", "std"} of its configuration, for every run of a replicated one, in the
    metric's own units (a minimised metric's mean is not shown negated)."""
    out = {}
    summary = replicate_summary(frame, dims)
    sign = summary.attrs.get(METRIC_SIGN_ATTR, 1.0)
    for row in summary.itertuples(index=False):
        for rid in row.ids:
            out[rid] = {"n": int(row.n), "mean": sign * float(row.mean), "std": float(row.std)}
    return out


def pooled_std(summary: pd.DataFrame) -> float | None:
    """sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1)) over replicated configurations."""
    if summary is None or len(summary) == 0:
        return None
    dof = (summary["n"] - 1).to_numpy(float)
    var = summary["std"].fillna(0).to_numpy(float) ** 2
    return float(math.sqrt((dof * var).sum() / dof.sum())) if dof.sum() > 0 else None


def best_events(done: pd.DataFrame, sigma: float | None, z: float = Z_95) -> pd.DataFrame:
    """Every run that set a new best (after the first), its gain over the previous best, and
    whether the gain is within noise (gain < z * sqrt(2) * sigma; unknown without sigma)."""
    y = done["metric"].to_numpy(float)
    rows = []
    best, best_id = -math.inf, None
    for i, (rid, v) in enumerate(zip(done["id"], y)):
        if v > best:
            if best_id is not None:
                gain = v - best
                rows.append({"id": rid, "seq": int(done["seq"].iloc[i]), "metric": float(v),
                             "previous_id": best_id, "previous": float(best), "gain": float(gain),
                             "within_noise": None if sigma is None else bool(gain < z * math.sqrt(2) * sigma)})
            best, best_id = v, rid
    return pd.DataFrame(rows, columns=["id", "seq", "metric", "previous_id", "previous", "gain",
                                       "within_noise"])


def noise_floor(frame: pd.DataFrame, dims: Sequence[str] | None = None, z: float = Z_95) -> dict:
    """Replicated configurations, the pooled noise level and the new-best events; JSON-ready."""
    summary = replicate_summary(frame, dims)
    sigma = pooled_std(summary)
    events = best_events(done_runs(frame), sigma, z)
    last = events.iloc[-1].to_dict() if len(events) else None
    return {
        "replicated_configs": int(len(summary)),
        "sigma": sigma,
        "threshold": None if sigma is None else z * math.sqrt(2) * sigma,
        "replicates": summary.to_dict("records"),
        "best_events": events.to_dict("records"),
        "current_best_within_noise": None if last is None else last["within_noise"],
    }
