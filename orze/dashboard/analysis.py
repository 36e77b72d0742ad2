"""The analysis page's figures: what `orze analyze` computes (orze.analysis.summary.analyze) and
the report's plots (orze.analysis.report), recomputed in a background thread at most every
`min_interval_s` and only when the leaderboard changed, since a full analysis of 100,000 runs takes
seconds. Requests never wait for it: they get the last result, or "computing".

The dashboard runs it lighter than the CLI's defaults (fewer permutations, no TPE replay); the
figures are the same kind, and the page says which settings it used.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from orze.dashboard.charts import PLOT_LOCK
from orze.layout import Layout

log = logging.getLogger(__name__)

SETTINGS = {"permutations": 50, "replay_permutations": 200, "tpe_trials": 0, "entropy_window": 100}


class AnalysisCache:
    def __init__(self, layout: Layout, min_interval_s: float = 120.0):
        self.layout, self.min_interval_s = layout, min_interval_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.version: Any = None
        self.computed_at: float | None = None
        self.started_at: float | None = None

    def state(self, version: Any) -> dict[str, Any]:
        """The last result; starts a recomputation when it is stale and none is running."""
        with self._lock:
            stale = self.version != version
            due = self.computed_at is None or time.time() - self.computed_at >= self.min_interval_s
            running = self._thread is not None and self._thread.is_alive()
            if stale and due and not running:
                self.started_at = time.time()
                self._thread = threading.Thread(target=self._compute, args=(version,), daemon=True,
                                                name="orze-dashboard-analysis")
                self._thread.start()
                running = True
            return {"result": self.result, "error": self.error, "computed_at": self.computed_at,
                    "running": running, "version": self.version, "settings": SETTINGS}

    def _compute(self, version: Any) -> None:
        try:
            result, error = self._analyse(), None
        except Exception as e:  # shown on the page; the next change retries
            log.warning("dashboard analysis failed: %s", e)
            result, error = None, f"{type(e).__name__}: {e}"
        with self._lock:
            self.result = result if result is not None else self.result
            self.error, self.version, self.computed_at = error, version, time.time()

    def _analyse(self) -> dict[str, Any]:
        from orze.analysis import AnalysisError, load_frame
        from orze.analysis.report import plot_convergence, plot_series
        from orze.analysis.summary import analyze, to_jsonable
        from orze.space import SpaceError, load_space

        try:
            space = load_space(self.layout.space_config) if self.layout.space_config.exists() else None
        except SpaceError:
            space = None
        try:
            a = analyze(load_frame(self.layout), space, permutations=SETTINGS["permutations"],
                        replay_permutations=SETTINGS["replay_permutations"],
                        tpe_trials=SETTINGS["tpe_trials"], entropy_window=SETTINGS["entropy_window"])
        except AnalysisError as e:
            return {"empty": str(e)}
        plots: dict[str, str | None] = {}
        with PLOT_LOCK:   # the report's plots use pyplot: one thread at a time
            plots["convergence"] = plot_convergence(a)
            ent = a.series.get("entropy")
            comps = a.summary.get("entropy", {}).get("components")
            plots["entropy"] = (plot_series(ent, [*comps, "joint"], "Configuration entropy over time", "bits")
                                if ent is not None and comps else None)
            jsd = a.series.get("jsd")
            plots["jsd"] = (plot_series(jsd.dropna(subset=["jsd"]), ["jsd"], "JSD between agents", "bits")
                            if jsd is not None and jsd["jsd"].notna().any() else None)
        return {"summary": to_jsonable(a.summary), "plots": plots}
