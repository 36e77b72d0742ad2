"""Every analysis of a campaign at once: `analyze(frame, space, ...)` returns an `Analysis` with a
JSON-ready `summary` (what `orze analyze --json` prints) and the `series` the report plots.

A part that the data cannot support (too few runs for a fit, one agent only, no architecture group
with enough runs) carries {"error": "<why>"} instead of failing the whole analysis; only an empty
selection is an error (AnalysisError), since then there is nothing to analyse at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from orze.analysis import baselines as baselines_mod
from orze.analysis import convergence as convergence_mod
from orze.analysis import exploration, noise, variance
from orze.analysis import sweeps as sweeps_mod
from orze.analysis.frame import METRIC_SIGN_ATTR, AnalysisError, config_columns, done_runs, restrict


@dataclass
class Analysis:
    summary: dict[str, Any]
    done: pd.DataFrame  # the selected runs, completion order
    series: dict[str, Any] = field(default_factory=dict)


def _guard(fn):
    try:
        return fn()
    except AnalysisError as e:
        return {"error": str(e)}


def _range(df: pd.DataFrame, col: str) -> dict:
    v = df[col].to_numpy(float)
    return {"min": float(np.nanmin(v)), "max": float(np.nanmax(v)), "last": float(v[-1]),
            "mean": float(np.nanmean(v))}


def search_dims(frame: pd.DataFrame, space=None) -> list[str]:
    """Dimensions a search policy chooses: the space's searchable ones, else all config columns."""
    if space is not None:
        return [n for n, d in space.dimensions.items() if d.search and n in frame.columns]
    return [c for c in config_columns(frame) if c != noise.SEED]


def analyze(frame: pd.DataFrame, space=None, *, after: str | None = None, since: float | None = None,
            window: int | None = None, seed: int = 0, permutations: int = 200,
            replay_permutations: int = 1000, tpe_trials: int = 500, entropy_window: int = 100,
            min_group_runs: int = variance.MIN_GROUP_RUNS) -> Analysis:
    all_done = done_runs(frame)
    done = restrict(all_done, after=after, since=since, window=window)
    if len(done) == 0:
        why = " in the chosen window" if (after or since is not None or window) else ""
        raise AnalysisError(f"no finished runs with a numeric metric{why} "
                            f"({len(frame)} rows on the leaderboard, {len(all_done)} finished)")
    y = done["metric"].to_numpy(float)
    dims = None if space is None else list(space.dimensions)
    series: dict[str, Any] = {"metric": y, "best": convergence_mod.best_so_far(y)}
    out: dict[str, Any] = {
        # pruned runs (docs/pruning.md) are counted, never analysed: their metric is not a final one
        "selection": {"rows": int(len(frame)), "done": int(len(all_done)), "analysed": int(len(done)),
                      "pruned": int((frame["status"] == "pruned").sum()) if "status" in frame else 0,
                      "after": after, "since": since, "window": window,
                      # a minimised metric is analysed negated (frame.done_runs): the name says so
                      "metric_name": ("-" if done.attrs.get(METRIC_SIGN_ATTR, 1.0) < 0 else "") +
                                     (str(done["metric_name"].dropna().iloc[-1])
                                      if "metric_name" in done and done["metric_name"].notna().any()
                                      else "metric"),
                      "best": float(y.max()), "best_id": str(done["id"].iloc[int(np.argmax(y))])
                      if "id" in done else None},
    }
    out["convergence"] = _guard(lambda: convergence_mod.convergence(y, permutations=permutations,
                                                                    seed=seed))
    out["variance"] = variance.decompose(done, min_runs=min_group_runs, seed=seed)

    comps = exploration.components_from_space(space)
    ent = _guard(lambda: exploration.sliding_entropy(done, comps, window=entropy_window))
    if isinstance(ent, pd.DataFrame):
        series["entropy"] = ent
        out["entropy"] = {"window": exploration.fit_window(len(done), entropy_window)[0], "components": comps,
                          **{c: _range(ent, c) for c in [*comps, "joint"]}}
    else:
        out["entropy"] = ent
    jsd = _guard(lambda: exploration.jsd_over_time(done, comps["architecture"], window=entropy_window))
    if isinstance(jsd, pd.DataFrame):
        series["jsd"] = jsd
        valid = jsd.dropna(subset=["jsd"])
        out["jsd"] = ({"error": "no window has two agents with enough runs"} if len(valid) == 0 else
                      {"window": exploration.fit_window(len(done), entropy_window)[0], "agents":
                       sorted(map(str, exploration.agent_labels(done).dropna().unique())),
                       **_range(valid, "jsd")})
    else:
        out["jsd"] = jsd
    ind = exploration.innovation(y)
    series["innovation_rate"] = exploration.innovation_rate(ind)
    out["innovation"] = exploration.innovation_summary(y)

    log_dims = None if space is None else {n for n, d in space.dimensions.items() if d.log}
    bl = _guard(lambda: baselines_mod.baselines(done, search_dims(done, space), replay_permutations,
                                                tpe_trials, seed, log_dims))
    if "curves" in bl:
        series["curves"] = {k: np.asarray(v) for k, v in bl.pop("curves").items()}
    out["baselines"] = bl
    out["noise"] = noise.noise_floor(done, dims)
    out["sweeps"] = _guard(lambda: sweeps_mod.enrichment(done))
    return Analysis(out, done, series)


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types (NaN and inf become null)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
