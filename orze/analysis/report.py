"""The campaign report: one self-contained HTML file (PNG plots embedded as base64) written to
runs/report/index.html by default.

Plots: best-so-far with the fitted models and the baselines, configuration entropy over time
(architecture / training / joint), JSD between agents over time, the innovation rate, per-
architecture box plots of the metric, and a backbone x encoder heatmap of the mean metric. Tables:
the headline numbers, the fits, the variance decomposition, the baselines and the replicated
configurations (mean ± std) with the new-best events flagged when within noise.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from orze.analysis.convergence import MODELS, Fit
from orze.analysis.frame import cell_labels
from orze.analysis.summary import Analysis
from orze.store.atomic import atomic_write_text

REPORT_FILE = "index.html"
MAX_SCATTER = 5000
MAX_BOXES = 24


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def plot_convergence(a: Analysis) -> str:
    plt = _plt()
    y, best = a.series["metric"], a.series["best"]
    n = np.arange(1, len(y) + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    pick = np.unique(np.linspace(0, len(y) - 1, min(len(y), MAX_SCATTER)).astype(int))
    ax.scatter(n[pick], y[pick], s=6, alpha=0.35, color="grey", label="runs")
    ax.plot(n, best, color="black", lw=2, label="best so far")
    conv = a.summary.get("convergence", {})
    for model, fd in (conv.get("fits") or {}).items():
        if fd.get("ok"):
            fit = Fit(**{k: v for k, v in fd.items() if k in Fit.__dataclass_fields__})
            ax.plot(n, fit.predict(n), lw=1.2, ls="--",
                    label=f"{model} fit (R²={fd['r2']:.3f})" if fd.get("r2") is not None else model)
    for name, curve in (a.series.get("curves") or {}).items():
        if name != "observed":
            ax.plot(np.arange(1, len(curve) + 1), curve, lw=1.2, label=f"{name} replay")
    lo = np.percentile(y, 5)
    ax.set_ylim(lo, max(best.max(), y.max()) + 0.02 * (y.max() - lo + 1e-9))
    ax.set_xlabel("runs (completion order)")
    ax.set_ylabel(a.summary["selection"]["metric_name"])
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Best so far")
    return _png(fig)


def plot_series(df: pd.DataFrame, cols: list[str], title: str, ylabel: str) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    few = len(df) < 30   # a small campaign: markers, so every window shows
    for c in cols:
        ax.plot(df["end"], df[c], label=c, marker="o" if few else None, ms=4)
    ax.set_xlabel("runs (window end)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_sweep_enrichment(sw: dict) -> str | None:
    """Share of auto-sweep runs among all finished runs and among the top N (the enrichment figure)."""
    if not isinstance(sw, dict) or "share_all" not in sw:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    labels = [f"all runs ({sw['runs']})", f"top {sw['top']}"]
    ax.bar(labels, [100 * sw["share_all"], 100 * sw["share_top"]], color=["#999", "#3a7"])
    ax.set_ylabel("auto-sweep runs (%)")
    ax.set_title("Sweep enrichment")
    return _png(fig)


def plot_innovation(rate: np.ndarray) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(np.arange(1, len(rate) + 1), rate)
    ax.set_xscale("log")
    ax.set_xlabel("runs")
    ax.set_ylabel("innovation rate")
    ax.set_title("Share of recent runs that set a new best (moving average)")
    return _png(fig)


def plot_boxes(done: pd.DataFrame) -> str | None:
    cols = [c for c in ("backbone", "temporal_encoder") if c in done.columns]
    if not cols:
        return None
    plt = _plt()
    labels = cell_labels(done, cols)
    groups = done.groupby(labels)["metric"]
    order = groups.median().sort_values(ascending=False).index[:MAX_BOXES]
    fig, ax = plt.subplots(figsize=(9, max(3, 0.32 * len(order) + 1)))
    import matplotlib

    # matplotlib renamed these keywords (3.9: tick_labels, 3.10: orientation); support both.
    version = tuple(int(x) for x in matplotlib.__version__.split(".")[:2] if x.isdigit())
    kw = {"orientation": "horizontal"} if version >= (3, 10) else {"vert": False}
    kw["tick_labels" if version >= (3, 9) else "labels"] = [
        f"{g} (n={len(groups.get_group(g))})" for g in order][::-1]
    ax.boxplot([groups.get_group(g).to_numpy() for g in order][::-1], **kw)
    ax.set_xlabel("metric")
    ax.set_title("Metric per architecture (" + " × ".join(cols) + ")")
    return _png(fig)


def plot_heatmap(done: pd.DataFrame) -> str | None:
    if not {"backbone", "temporal_encoder"} <= set(done.columns):
        return None
    plt = _plt()
    table = done.assign(backbone=done["backbone"].astype(str),
                        temporal_encoder=done["temporal_encoder"].astype(str)).pivot_table(
        index="backbone", columns="temporal_encoder", values="metric", aggfunc=["mean", "count"])
    mean, count = table["mean"], table["count"]
    fig, ax = plt.subplots(figsize=(1.3 * mean.shape[1] + 3, 0.5 * mean.shape[0] + 2))
    im = ax.imshow(mean.to_numpy(float), cmap="viridis", aspect="auto")
    ax.set_xticks(range(mean.shape[1]), mean.columns, rotation=30, ha="right")
    ax.set_yticks(range(mean.shape[0]), mean.index)
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            v, c = mean.iat[i, j], count.iat[i, j]
            if pd.notna(v):
                ax.text(j, i, f"{v:.3f}\nn={int(c)}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(im, ax=ax, label="mean metric")
    ax.set_title("Mean metric: backbone × temporal encoder")
    return _png(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    if isinstance(v, list):
        return ", ".join(map(str, v[:6])) + (" …" if len(v) > 6 else "")
    return str(v)


def _table(rows: list[dict], cols: list[str] | None = None) -> str:
    if not rows:
        return "<p><em>none</em></p>"
    cols = cols or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">' if b64 else ""


def _error(section: dict) -> str:
    return f'<p class="err">{html.escape(section["error"])}</p>' if isinstance(section, dict) and "error" in section else ""


def render_html(a: Analysis) -> str:
    s = a.summary
    sel, conv, var = s["selection"], s.get("convergence", {}), s.get("variance", {})
    parts = [f"<h1>Campaign report</h1><p>Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}. "
             f"{sel['analysed']} finished runs analysed ({sel['rows']} leaderboard rows); best "
             f"{html.escape(sel['metric_name'])} {_fmt(sel['best'])} ({html.escape(str(sel['best_id']))}).</p>"]
    parts.append("<h2>Convergence</h2>" + _error(conv))
    if "fits" in conv:
        rows = []
        for m, fd in conv["fits"].items():
            names = MODELS[m][1]
            rows.append({"model": m + (" (selected)" if m == conv["selected"] else ""),
                         "parameters": "; ".join(f"{k}={_fmt(fd['params'].get(k))} ± {_fmt(fd['stderr'].get(k))}"
                                                 for k in names) if fd["ok"] else "–",
                         "fit": fd.get("verdict", ""), "R²": fd["r2"], "AIC": fd["aic"]})
        parts.append(f"<p>{html.escape(conv.get('verdict', ''))}</p>")
        parts.append(_table(rows))
        null = conv.get("null") or {}
        parts.append(f"<p>Permutation null for R² over {null.get('permutations', 0)} random orders: mean "
                     f"{_fmt(null.get('r2_mean'))}, 95th percentile {_fmt(null.get('r2_p95'))}.</p>")
    parts.append(_img(plot_convergence(a), "best so far"))
    bl = s.get("baselines", {})
    parts.append("<h2>Baselines on the same pool</h2>" + _error(bl))
    if "table" in bl:
        parts.append(_table(bl["table"]))
    parts.append("<h2>Variance decomposition</h2>")
    ow = var.get("one_way", {})
    parts.append(_error(ow) or _table([{k: ow.get(k) for k in ("groups", "runs", "eta2", "F", "p", "excluded_runs")}]))
    bal = var.get("balanced", {})
    parts.append(_error(bal) or f"<p>Balanced re-subsample ({bal.get('per_group')} runs per group): η² "
                 f"{_fmt(bal.get('eta2_mean'))} [{_fmt(bal.get('eta2_lo'))}, {_fmt(bal.get('eta2_hi'))}].</p>")
    tw = var.get("two_way", {})
    parts.append(_error(tw) or _table([{"term": t, **v} for t, v in tw.get("terms", {}).items()]))
    wb = var.get("within_backbone", {})
    if isinstance(wb, dict) and "error" not in wb and wb:
        parts.append("<p>Encoder share within each backbone:</p>" +
                     _table([{"backbone": k, "eta2": v["eta2"], "runs": v["runs"], "p": v["p"]} for k, v in wb.items()]))
    parts.append(_img(plot_boxes(a.done), "per architecture") + _img(plot_heatmap(a.done), "heatmap"))
    parts.append("<h2>Exploration</h2>" + _error(s.get("entropy", {})))
    if "entropy" in a.series:
        ent = s["entropy"]
        cols = [c for c in ent["components"]] + ["joint"]
        parts.append(_table([{"component": c, **ent[c]} for c in cols]))
        parts.append(_img(plot_series(a.series["entropy"], cols, f"Configuration entropy (window {ent['window']})",
                                      "bits"), "entropy"))
    parts.append(_error(s.get("jsd", {})))
    if "jsd" in a.series and "error" not in s.get("jsd", {}):
        parts.append(_img(plot_series(a.series["jsd"], ["jsd"], "Jensen–Shannon divergence between agents",
                                      "bits"), "jsd"))
    inn = s.get("innovation", {})
    fit = inn.get("fit", {})
    parts.append(f"<p>Innovation: {inn.get('improvements')} new bests after the first run; fitted "
                 f"P(new best at n) = c·n^−β with c={_fmt(fit.get('c'))}, β={_fmt(fit.get('beta'))} ± "
                 f"{_fmt(fit.get('beta_se'))}.</p>")
    parts.append(_img(plot_innovation(a.series["innovation_rate"]), "innovation"))
    sw = s.get("sweeps", {})
    parts.append("<h2>Auto-sweeps</h2>" + _error(sw))
    if "share_all" in sw:
        parts.append(f"<p>{sw['sweeps']} of {sw['runs']} finished runs are auto-sweep variants "
                     f"({100 * sw['share_all']:.1f}%); among the top {sw['top']} there are {sw['top_sweeps']} "
                     f"({100 * sw['share_top']:.1f}%): enrichment {_fmt(sw['enrichment'])}.</p>")
        parts.append(_img(plot_sweep_enrichment(sw), "sweep enrichment"))
    nz = s.get("noise", {})
    parts.append("<h2>Noise floor</h2>")
    parts.append(f"<p>{nz.get('replicated_configs', 0)} replicated configurations; pooled σ = "
                 f"{_fmt(nz.get('sigma'))}; a new best needs a gain ≥ {_fmt(nz.get('threshold'))} to be "
                 "outside the noise.</p>")
    parts.append(_table(nz.get("replicates", [])[:30], ["first_id", "n", "mean", "std", "min", "max"]))
    parts.append(_table(nz.get("best_events", [])[-30:], ["id", "metric", "previous_id", "gain", "within_noise"]))
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
             ".err{color:#a33}")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Orze campaign report</title>"
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>")


def write_report(a: Analysis, out_dir: Path) -> Path:
    """Render and write the report atomically; returns the file's path."""
    path = Path(out_dir) / REPORT_FILE
    atomic_write_text(path, render_html(a))
    return path
