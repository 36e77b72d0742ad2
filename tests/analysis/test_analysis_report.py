"""The HTML report is self-contained: every plot is an embedded PNG."""

import base64
import re

import pytest

from orze.analysis import AnalysisError
from orze.analysis.report import write_report
from orze.analysis.summary import analyze
from orze.analysis.synthetic import synthetic_rows
from orze.space import load_space
from orze.store.leaderboard import rows_to_frame


def test_report_on_synthetic_rows_embeds_png_plots(tmp_path):
    rows = synthetic_rows(160, seed=2)
    # a replicated configuration so the noise table has content
    rows.append(dict(rows[10], id="rep-1", config=dict(rows[10]["config"], seed=424242), metric=rows[10]["metric"] + 0.003))
    a = analyze(rows_to_frame(rows), load_space("configs/space.yaml"), permutations=10,
                replay_permutations=50, tpe_trials=20)
    path = write_report(a, tmp_path / "report")
    assert path == tmp_path / "report" / "index.html"
    text = path.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) >= 6  # convergence, boxes, heatmap, entropy, jsd, innovation
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from elsewhere
    assert "Convergence" in text and "Noise floor" in text
    assert "syn-000010" in text  # the replicated configuration is listed by its first run


def test_analysis_of_an_empty_selection_is_a_clear_error():
    rows = synthetic_rows(20, seed=0)
    with pytest.raises(AnalysisError, match="no finished runs"):
        analyze(rows_to_frame([dict(r, status="failed") for r in rows]))
