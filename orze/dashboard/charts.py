"""Charts drawn on the server with matplotlib (no JavaScript library, no CDN: the cluster may have
no internet). PNG bytes; the object-oriented API only (no pyplot state), under one lock, since
matplotlib is not thread-safe and the server renders from a thread pool.

`overview_png(index)`: the best-so-far curve over all runs in completion order, with every run
scattered by agent (colour) and status (failed and misconfigured runs, which have no metric, as
marks along the bottom edge). At most MAX_POINTS runs are drawn (evenly spaced, plus every run that
set a new best), so a 100,000-run campaign renders in a fraction of a second.
"""

from __future__ import annotations

import io
import threading
from typing import Any

import numpy as np

MAX_POINTS = 20_000
PLOT_LOCK = threading.Lock()
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7", "#9c755f",
           "#bab0ac", "#e15759"]


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def _empty(text: str, w: float = 9, h: float = 3.6) -> bytes:
    fig = _figure(w, h)
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#666")
    return _png(fig)


def overview_png(rows: list[dict[str, Any]], curve: list[tuple[int, float]], metric_name: str) -> bytes:
    with PLOT_LOCK:
        if not rows:
            return _empty("no finished runs yet")
        n = len(rows)
        pick = set(np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).astype(int)).tolist())
        pick.update(i for i, _ in curve)
        by_agent: dict[str, tuple[list[int], list[float]]] = {}
        bad: dict[str, list[int]] = {"failed": [], "misconfigured": []}
        for i in sorted(pick):
            r = rows[i]
            m = r.get("metric")
            if r.get("status") == "done" and isinstance(m, (int, float)) and np.isfinite(m):
                xs, ys = by_agent.setdefault(str(r.get("agent") or r.get("source") or "human"), ([], []))
                xs.append(i + 1)
                ys.append(float(m))
            elif r.get("status") in bad:
                bad[r["status"]].append(i + 1)
        fig = _figure(9.5, 3.8)
        ax = fig.subplots()
        ys_all = [y for _, ys in by_agent.values() for y in ys]
        size = 5 if len(pick) > 2000 else 22   # a young campaign's few runs stay visible
        for k, (agent, (xs, ys)) in enumerate(sorted(by_agent.items())):
            ax.scatter(xs, ys, s=size, alpha=0.45, color=PALETTE[k % len(PALETTE)], label=agent, rasterized=True,
                       linewidths=0)
        if curve:
            cx = [i + 1 for i, _ in curve] + [n]
            cy = [b for _, b in curve] + [curve[-1][1]]
            ax.step(cx, cy, where="post", color="black", lw=1.8, label="best so far")
        lo = float(np.percentile(ys_all, 2 if len(ys_all) > 50 else 0)) if ys_all else 0.0
        hi = max(ys_all) if ys_all else 1.0
        pad = 0.04 * (hi - lo + 1e-9)
        ax.set_ylim(lo - pad, hi + pad)
        for status, color in (("failed", "#e15759"), ("misconfigured", "#b07aa1")):
            if bad[status]:
                ax.scatter(bad[status], [lo - pad * 0.5] * len(bad[status]), marker="|", s=30,
                           color=color, label=f"{status} ({len(bad[status])} shown)", rasterized=True)
        ax.set_xlim(0, n + 1)
        ax.set_xlabel("runs (completion order)")
        ax.set_ylabel(metric_name)
        ax.grid(alpha=0.25)
        ax.legend(fontsize=7, loc="lower right", ncol=2, markerscale=2)
        return _png(fig)


def curves_png(history: list[dict[str, Any]]) -> bytes:
    """A run's training curves from metrics.json `history` (train loss, validation metric per epoch)."""
    with PLOT_LOCK:
        if not history:
            return _empty("no training history", 7, 3)
        ep = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        fig = _figure(7.5, 3.0)
        ax = fig.subplots()
        loss = [h.get("train_loss") for h in history]
        if any(isinstance(v, (int, float)) for v in loss):
            ax.plot(ep, loss, marker="o", ms=3, color="#4e79a7", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss")
        keys = [k for k in history[0] if k.startswith("val_") and isinstance(history[0][k], (int, float))]
        if keys:
            ax2 = ax.twinx()
            for k, color in zip(keys, ("#f28e2b", "#59a14f", "#e15759")):
                ax2.plot(ep, [h.get(k) for h in history], marker="s", ms=3, color=color, label=k)
            ax2.set_ylabel(", ".join(keys))
            ax2.legend(fontsize=7, loc="lower right")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.25)
        return _png(fig)


class ChartCache:
    """The last rendering of each chart per data version."""

    def __init__(self):
        self._lock = threading.Lock()
        self._png: dict[str, tuple[Any, bytes]] = {}

    def get(self, name: str, version: Any, render) -> bytes:
        with self._lock:
            hit = self._png.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
        data = render()
        with self._lock:
            self._png[name] = (version, data)
        return data
