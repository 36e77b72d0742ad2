"""Sweep enrichment: are auto-sweep variants over-represented among the best runs?

`enrichment(done, top=100)` (pure over the finished runs) counts the runs whose `source` is
`sweep` among all finished runs and among the `top` best by the validation metric, and gives both
shares and their ratio (enrichment > 1: sweeps are more common at the top than overall, i.e. local
refinement of promising bases pays). With fewer than `top` finished runs, "top" is all of them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from orze.analysis.frame import AnalysisError

SWEEP = "sweep"


def enrichment(done: pd.DataFrame, top: int = 100) -> dict[str, Any]:
    if len(done) == 0:
        raise AnalysisError("no finished runs")
    source = done["source"].astype(object) if "source" in done.columns else pd.Series([None] * len(done))
    is_sweep = (source == SWEEP).to_numpy()
    order = done["metric"].astype(float).to_numpy().argsort(kind="stable")[::-1]
    k = min(top, len(done))
    top_sweeps = int(is_sweep[order[:k]].sum())
    total = int(is_sweep.sum())
    share_all = total / len(done)
    share_top = top_sweeps / k
    return {"runs": int(len(done)), "sweeps": total, "share_all": share_all, "top": int(k),
            "top_sweeps": top_sweeps, "share_top": share_top,
            "enrichment": (share_top / share_all) if share_all > 0 else None}
