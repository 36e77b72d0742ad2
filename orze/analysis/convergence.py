"""Convergence of a campaign: the best-so-far curve and the models fitted to it.

best(n) is the running maximum of the validation metric over the first n finished runs in completion
order. Three models are fitted by nonlinear least squares (scipy.optimize.curve_fit):

    power law     best(n) = a_inf - b * n^(-alpha)     a_inf <= the metric's maximum, b >= 0, alpha > 0
    exponential   best(n) = a_inf - b * exp(-c * n)    a_inf <= the metric's maximum, b >= 0, c > 0
    logarithmic   best(n) = a + b * ln(n)

Each fit reports its parameters with standard errors (square roots of the covariance diagonal), R^2
and AIC = N ln(RSS/N) + 2k; the selected model is the one with the lowest AIC. Because any
non-decreasing curve is fitted well, R^2 is judged against a permutation null: the same results in
random orders, each refitted with the power law (mean and 95th percentile of their R^2).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from orze.analysis.frame import AnalysisError

MIN_FIT_RUNS = 8
MAX_FIT_POINTS = 4000  # longer curves are fitted on this many evenly spaced points (speed)


def best_so_far(metric: Sequence[float]) -> np.ndarray:
    y = np.asarray(metric, dtype=float)
    if y.size == 0:
        return y
    return np.maximum.accumulate(y)


def _power(n, a, b, alpha):
    return a - b * np.power(n, -alpha)


def _exponential(n, a, b, c):
    return a - b * np.exp(-c * n)


def _logarithmic(n, a, b):
    return a + b * np.log(n)


MODELS: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "power": (_power, ("a_inf", "b", "alpha")),
    "exponential": (_exponential, ("a_inf", "b", "c")),
    "logarithmic": (_logarithmic, ("a", "b")),
}


@dataclass
class Fit:
    model: str
    ok: bool
    params: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float | None] = field(default_factory=dict)
    r2: float | None = None
    aic: float | None = None
    message: str = ""

    def predict(self, n: np.ndarray) -> np.ndarray:
        fn, names = MODELS[self.model]
        return fn(np.asarray(n, dtype=float), *[self.params[k] for k in names])

    def to_dict(self) -> dict:
        return asdict(self)


def metric_upper(metric: Sequence[float]) -> float:
    """The bound on a_inf: 1 for metrics that live in [0, 1] (AP, AUC, accuracy), else none."""
    y = np.asarray(metric, dtype=float)
    return 1.0 if y.size and np.nanmin(y) >= 0.0 and np.nanmax(y) <= 1.0 else math.inf


def _fit_points(n_total: int, max_points: int) -> np.ndarray:
    if n_total <= max_points:
        return np.arange(1, n_total + 1, dtype=float)
    return np.unique(np.linspace(1, n_total, max_points).round()).astype(float)


def _start(model: str, y: np.ndarray, upper: float) -> tuple[list[float], tuple[list, list]]:
    last, first, span = float(y[-1]), float(y[0]), float(y[-1] - y[0])
    gap = max(span, 1e-6)
    a0 = last + 0.1 * gap
    if math.isfinite(upper):
        a0 = min(a0, upper)
    if model == "power":
        return [a0, gap, 0.5], ([-np.inf, 0.0, 1e-4], [upper, np.inf, 10.0])
    if model == "exponential":
        return [a0, gap, 3.0 / max(len(y), 1)], ([-np.inf, 0.0, 1e-9], [upper, np.inf, 10.0])
    return [first, gap / max(math.log(max(len(y), 2)), 1e-9)], ([-np.inf, -np.inf], [np.inf, np.inf])


def fit_model(model: str, n: np.ndarray, y: np.ndarray, upper: float = math.inf) -> Fit:
    """Fit one model to the points (n, y); never raises for a failed fit (ok=False, message)."""
    fn, names = MODELS[model]
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(y) < len(names) + 2:
        return Fit(model, False, message=f"{len(y)} points; need at least {len(names) + 2}")
    p0, bounds = _start(model, y, upper)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            popt, pcov = curve_fit(fn, n, y, p0=p0, bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError) as e:
        return Fit(model, False, message=f"did not converge: {e}")
    resid = y - fn(n, *popt)
    rss = float(np.sum(resid ** 2))
    tss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - rss / tss if np.ptp(y) > 0 and tss > 0 else None  # a flat curve has no R^2
    aic = len(y) * math.log(max(rss, 1e-300) / len(y)) + 2 * len(names)
    diag = np.diag(pcov) if pcov is not None else np.full(len(names), np.inf)
    stderr = {k: (float(math.sqrt(v)) if np.isfinite(v) and v >= 0 else None)
              for k, v in zip(names, diag)}
    return Fit(model, True, {k: float(v) for k, v in zip(names, popt)}, stderr, r2, aic)


def fit_curve(best: Sequence[float], upper: float = math.inf,
              max_points: int = MAX_FIT_POINTS) -> dict[str, Fit]:
    """Fit every model to a best-so-far curve (index n = 1..N)."""
    best = np.asarray(best, dtype=float)
    n = _fit_points(len(best), max_points)
    y = best[n.astype(int) - 1]
    return {m: fit_model(m, n, y, upper) for m in MODELS}


def describe_fit(fd: dict) -> str:
    """One fit in words: converged with determined parameters, fitted but undetermined (too few or
    too flat runs: a standard error undefined or larger than its value), or did not converge."""
    if not fd.get("ok"):
        msg = str(fd.get("message") or "")
        if msg.startswith("did not converge"):
            return f"did not converge: the optimiser found no parameters ({msg.split(': ', 1)[-1]})"
        return f"not fitted: {msg}"
    loose = [k for k, v in fd["params"].items()
             if fd["stderr"].get(k) is None or (v != 0 and fd["stderr"][k] > abs(v))]
    if loose:
        return (f"did not converge to determined parameters: {', '.join(loose)} "
                f"{'has' if len(loose) == 1 else 'have'} an undefined or larger-than-itself standard error "
                f"(too few runs or too flat a curve to pin it)")
    return "converged"


def convergence_sentence(conv: dict) -> str:
    """The convergence section's headline in words."""
    fits = conv.get("fits") or {}
    words = {m: describe_fit(fd) for m, fd in fits.items()}
    good = [m for m, w in words.items() if w == "converged"]
    sel = conv.get("selected")
    if not good:
        return (f"No model converged on the best-so-far curve of {conv.get('runs')} runs "
                f"({'; '.join(f'{m}: {w}' for m, w in words.items())}); read the curve, not a fit.")
    ceiling = fits[sel]["params"].get("a_inf") if sel in fits else None
    upper = conv.get("upper_bound")
    if sel in good and ceiling is not None and upper is not None and ceiling >= upper - 1e-6:
        tail = (f", but its ceiling sits at the metric's bound ({upper:g}): the runs so far do not "
                f"show where the curve levels off")
    else:
        tail = f", predicting a ceiling of {ceiling:.4f}" if sel in good and ceiling is not None else ""
    beats = conv.get("beats_null_p95")
    null = ("; its R² is above the permutation null's 95th percentile" if beats else
            "; its R² is not above the permutation null's 95th percentile (any rising curve fits this well)"
            if beats is False else "")
    return f"Converged: {', '.join(good)}; selected by AIC: {sel}{tail}{null}."


def select_model(fits: dict[str, Fit]) -> str | None:
    ok = [f for f in fits.values() if f.ok and f.aic is not None and math.isfinite(f.aic)]
    return min(ok, key=lambda f: f.aic).model if ok else None


def permutation_null(metric: Sequence[float], permutations: int = 200, seed: int = 0,
                     upper: float = math.inf, max_points: int = MAX_FIT_POINTS) -> dict:
    """R^2 of the power-law fit to the best-so-far of randomly reordered results."""
    y = np.asarray(metric, dtype=float)
    rng = np.random.default_rng(seed)
    n = _fit_points(len(y), max_points)
    idx = n.astype(int) - 1
    r2s = []
    for _ in range(permutations):
        curve = np.maximum.accumulate(rng.permutation(y))[idx]
        if curve[0] == curve[-1]:
            continue  # the best came first: a flat curve, R^2 undefined (counted as not fitted)
        fit = fit_model("power", n, curve, upper)
        if fit.ok and fit.r2 is not None:
            r2s.append(fit.r2)
    if not r2s:
        return {"permutations": permutations, "fitted": 0, "r2_mean": None, "r2_p95": None}
    arr = np.asarray(r2s)
    return {"permutations": permutations, "fitted": int(arr.size), "r2_mean": float(arr.mean()),
            "r2_p95": float(np.percentile(arr, 95))}


def convergence(metric: Sequence[float], *, permutations: int = 200, seed: int = 0,
                upper: float | None = None) -> dict:
    """The full convergence analysis of results in completion order; JSON-ready."""
    y = np.asarray(metric, dtype=float)
    if y.size < MIN_FIT_RUNS:
        raise AnalysisError(f"convergence: {y.size} finished runs; a fit needs at least "
                            f"{MIN_FIT_RUNS} (widen --window/--since/--after or run more)")
    bound = metric_upper(y) if upper is None else upper
    best = best_so_far(y)
    if best[-1] == best[0]:
        raise AnalysisError(f"convergence: the first of {y.size} runs is still the best "
                            "(a flat best-so-far curve has nothing to fit)")
    fits = fit_curve(best, bound)
    null = permutation_null(y, permutations, seed, bound) if permutations > 0 else None
    power = fits["power"]
    out = {
        "runs": int(y.size),
        "best": float(best[-1]),
        "upper_bound": bound if math.isfinite(bound) else None,
        "fits": {m: f.to_dict() for m, f in fits.items()},
        "selected": select_model(fits),
        "alpha": power.params.get("alpha") if power.ok else None,
        "r2": power.r2 if power.ok else None,
        "null": null,
        "beats_null_p95": (None if not null or null["r2_p95"] is None or power.r2 is None
                           else bool(power.r2 > null["r2_p95"])),
    }
    for fd in out["fits"].values():
        fd["verdict"] = describe_fit(fd)
    out["verdict"] = convergence_sentence(out)
    return out
