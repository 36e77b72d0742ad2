"""Exploration dynamics: what the search tries over time, and how often it improves.

- Configuration entropy H = -sum_c p(c) log2 p(c) (bits) of the cells tried in a sliding window of
  runs, split into an architecture component (cells over the space's discrete `group: architecture`
  dimensions: backbone x temporal_encoder x pooling) and a training component (`group: training`:
  batch_size x scheduler x seq_len x epochs). High H = exploring, low H = exploiting.
- Agent specialisation: the Jensen-Shannon divergence (bits, in [0, 1] for two agents) between the
  agents' distributions over architecture cells in each window; with more agents, the equal-weight
  generalisation H(mean of P_i) - mean of H(P_i).
- Innovation: I_n = 1 when run n beats every earlier run; its trailing moving average is the
  innovation rate, and a power law P(I_n = 1) = c * n^(-beta) is fitted to I_n (n >= 2) by maximum
  likelihood. For results in a random order P(I_n = 1) = 1/n exactly, i.e. c = 1 and beta = 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from orze.analysis.frame import AnalysisError, cell_labels

DEFAULT_COMPONENTS = {
    "architecture": ["backbone", "temporal_encoder", "pooling"],
    "training": ["batch_size", "scheduler", "seq_len", "epochs"],
}
UNATTRIBUTED = {"", "none", "None", "nan", "-"}


def components_from_space(space=None) -> dict[str, list[str]]:
    """Entropy components from the space's `group` field: the discrete, cell-counted dimensions of
    the architecture and training groups (conditional or continuous ones would only add noise)."""
    if space is None:
        return {k: list(v) for k, v in DEFAULT_COMPONENTS.items()}
    out: dict[str, list[str]] = {}
    for name in DEFAULT_COMPONENTS:
        dims = [d.name for d in space.dimensions.values()
                if d.group == name and d.is_discrete and d.cells and not d.when]
        out[name] = dims or list(DEFAULT_COMPONENTS[name])
    return out


def entropy_bits(counts: Sequence[float]) -> float:
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    if total <= 0:
        return 0.0
    p = c[c > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0  # + 0.0: no '-0.0' for a single cell


def jsd_bits(distributions: Sequence[Sequence[float]]) -> float:
    """Equal-weight Jensen-Shannon divergence (bits) of two or more count/probability vectors."""
    ps = [np.asarray(d, dtype=float) / np.sum(d) for d in distributions]
    mix = np.mean(ps, axis=0)
    return max(0.0, entropy_bits(mix) - float(np.mean([entropy_bits(p) for p in ps])))


MIN_WINDOWS = 3   # fewer windows than this draws a point or a segment, not a curve


def fit_window(n: int, window: int, step: int | None = None) -> tuple[int, int]:
    """(window, step) for `n` runs: the requested window, shrunk to half the campaign when it
    would give fewer than MIN_WINDOWS windows (a small campaign gets a curve, not one point)."""
    window = max(1, min(window, n))
    step = step or max(1, window // 5)
    if len(_windows(n, window, step)) < MIN_WINDOWS and n >= 4:
        window = max(2, n // 2)
        step = max(1, window // 5)
    return window, step


def _windows(n: int, window: int, step: int) -> list[tuple[int, int]]:
    if n <= window:
        return [(0, n)]
    ends = list(range(window, n + 1, step))
    if ends[-1] != n:
        ends.append(n)
    return [(e - window, e) for e in ends]


def sliding_entropy(done: pd.DataFrame, components: dict[str, list[str]] | None = None,
                    window: int = 100, step: int | None = None) -> pd.DataFrame:
    """Entropy (bits) of each component and of their joint cell in windows of `window` runs.
    Columns: start, end (run positions, end exclusive), one per component, and `joint`."""
    if len(done) == 0:
        raise AnalysisError("entropy: no finished runs")
    components = components or DEFAULT_COMPONENTS
    window, step = fit_window(len(done), window, step)
    codes = {}
    for name, dims in components.items():
        cols = [d for d in dims if d in done.columns]
        codes[name] = pd.factorize(cell_labels(done, cols))[0]
    all_cols = [d for dims in components.values() for d in dims if d in done.columns]
    codes["joint"] = pd.factorize(cell_labels(done, all_cols))[0]
    rows = []
    for s, e in _windows(len(done), window, step):
        row = {"start": s, "end": e}
        for name, c in codes.items():
            row[name] = entropy_bits(np.bincount(c[s:e]))
        rows.append(row)
    return pd.DataFrame(rows)


def agent_labels(done: pd.DataFrame) -> pd.Series:
    if "agent" not in done.columns:
        return pd.Series([None] * len(done), index=done.index, dtype=object)
    a = done["agent"].astype(object)
    return a.where(a.notna() & ~a.astype(str).isin(UNATTRIBUTED), None)


def jsd_over_time(done: pd.DataFrame, dims: list[str] | None = None, window: int = 100,
                  step: int | None = None, min_agent_runs: int = 5) -> pd.DataFrame:
    """JSD between agents' distributions over the cells of `dims` (architecture by default) in
    windows of runs; a window counts only agents with `min_agent_runs`+ attributed runs in it.
    Columns: start, end, agents (how many took part), jsd (NaN when fewer than two)."""
    dims = [d for d in (dims or DEFAULT_COMPONENTS["architecture"]) if d in done.columns]
    agents = agent_labels(done)
    if agents.dropna().nunique() < 2:
        raise AnalysisError("JSD: fewer than two agents have attributed runs (the `agent` column)")
    codes, _ = pd.factorize(cell_labels(done, dims))
    k = int(codes.max()) + 1
    agent_codes, agent_names = pd.factorize(agents)  # None -> -1
    window, step = fit_window(len(done), window, step)
    rows = []
    for s, e in _windows(len(done), window, step):
        ac, cc = agent_codes[s:e], codes[s:e]
        dists = []
        for a in range(len(agent_names)):
            mine = cc[ac == a]
            if mine.size >= min_agent_runs:
                dists.append(np.bincount(mine, minlength=k))
        rows.append({"start": s, "end": e, "agents": len(dists),
                     "jsd": jsd_bits(dists) if len(dists) >= 2 else math.nan})
    return pd.DataFrame(rows)


def innovation(metric: Sequence[float]) -> np.ndarray:
    """I_n: 1 where a run beats every earlier one (the first run counts as 1)."""
    y = np.asarray(metric, dtype=float)
    if y.size == 0:
        return y.astype(int)
    prev = np.concatenate([[-np.inf], np.maximum.accumulate(y)[:-1]])
    return (y > prev).astype(int)


def innovation_rate(indicator: Sequence[int], window: int = 50) -> np.ndarray:
    """Trailing moving average of the innovation indicator (shorter at the start)."""
    s = pd.Series(np.asarray(indicator, dtype=float))
    return s.rolling(window, min_periods=1).mean().to_numpy()


def _decay_nll(theta: np.ndarray, n: np.ndarray, events: np.ndarray) -> float:
    log_c, beta = theta
    p = np.clip(np.exp(log_c - beta * np.log(n)), 1e-12, 1 - 1e-12)
    return float(-(events * np.log(p) + (1 - events) * np.log1p(-p)).sum())


def fit_decay(n: Sequence[float], events: Sequence[float]) -> dict:
    """Maximum-likelihood fit of P(I_n = 1) = c * n^(-beta) to innovation indicators (Bernoulli),
    with standard errors from the numerical Hessian. Observations from several campaigns can be
    pooled by concatenating their (n, I_n) pairs."""
    from scipy.optimize import minimize

    n = np.asarray(n, dtype=float)
    ev = np.asarray(events, dtype=float)
    if n.size < 4 or ev.sum() < 1:
        return {"ok": False, "message": "need at least 4 runs and one improvement after the first run"}
    res = minimize(_decay_nll, x0=np.array([0.0, 1.0]), args=(n, ev), method="L-BFGS-B",
                   bounds=[(-20.0, 5.0), (0.0, 10.0)])
    if not res.success:
        return {"ok": False, "message": f"did not converge: {res.message}"}
    log_c, beta = res.x
    se = [None, None]
    h = 1e-4
    try:
        hess = np.zeros((2, 2))
        for i in range(2):
            for j in range(2):
                e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
                hess[i, j] = (_decay_nll(res.x + e_i + e_j, n, ev) - _decay_nll(res.x + e_i - e_j, n, ev)
                              - _decay_nll(res.x - e_i + e_j, n, ev) + _decay_nll(res.x - e_i - e_j, n, ev)) / (4 * h * h)
        cov = np.linalg.inv(hess)
        var_logc, var_beta = cov[0, 0], cov[1, 1]
        if var_beta > 0:
            se[1] = float(math.sqrt(var_beta))
        if var_logc > 0:
            se[0] = float(math.exp(log_c) * math.sqrt(var_logc))  # delta method
    except np.linalg.LinAlgError:
        pass
    return {"ok": True, "c": float(math.exp(log_c)), "beta": float(beta), "c_se": se[0], "beta_se": se[1]}


def innovation_summary(metric: Sequence[float], window: int = 50) -> dict:
    ind = innovation(metric)
    n = np.arange(1, ind.size + 1)
    fit = fit_decay(n[1:], ind[1:])
    return {"improvements": int(ind[1:].sum()) if ind.size > 1 else 0, "runs": int(ind.size),
            "window": window, "fit": fit}
