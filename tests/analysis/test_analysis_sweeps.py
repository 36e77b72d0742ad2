"""The sweep-enrichment figure: share of auto-sweeps among all finished runs and among the top N."""

import pandas as pd
import pytest

from orze.analysis.frame import AnalysisError
from orze.analysis.sweeps import enrichment


def frame(metrics, sources):
    return pd.DataFrame({"metric": metrics, "source": sources, "status": "done"})


def test_enrichment_counts_sweeps_overall_and_at_the_top():
    # 10 runs, 3 sweeps, all three among the best 4
    metrics = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.95, 0.99, 0.7]
    sources = ["llm"] * 6 + ["sweep", "sweep", "sweep", "tpe"]
    e = enrichment(frame(metrics, sources), top=4)
    assert (e["runs"], e["sweeps"], e["top"], e["top_sweeps"]) == (10, 3, 4, 3)
    assert e["share_all"] == pytest.approx(0.3) and e["share_top"] == pytest.approx(0.75)
    assert e["enrichment"] == pytest.approx(2.5)


def test_no_sweeps_and_small_campaigns():
    e = enrichment(frame([0.1, 0.2], ["llm", None]), top=100)
    assert e["top"] == 2 and e["sweeps"] == 0 and e["enrichment"] is None
    with pytest.raises(AnalysisError):
        enrichment(frame([], []))
