"""What a run keeps (issue 19): predictions.npz always, weights.pt with worker.keep_weights: best,
and the kept weights score clips exactly as the run did (orze.worker.inference)."""

import numpy as np
import pytest

from orze.layout import RUN_PREDICTIONS, RUN_WEIGHTS
from orze.metrics import resolve
from orze.predictions import load_predictions, run_metric
from orze.worker.inference import InferenceError, load_run_model, score_features
from tests.conftest import make_research_dir
from tests.worker.helpers import run_config

FAST = {"epochs": 2, "seq_len": 8, "d_model": 16, "num_heads": 2, "temporal_encoder": "transformer",
        "backbone": "vjepa2"}


@pytest.mark.parametrize("keep", ["best", "none"])
def test_keep_weights_is_wired_and_kept_weights_reproduce_the_run(tmp_path, keep):
    layout = make_research_dir(tmp_path / "r", backbones=("vjepa2",), project={"worker": {"keep_weights": keep}})
    _, metrics, _, findings = run_config(layout, FAST)
    assert findings == []
    run_dir = sorted(layout.exp.iterdir())[-1]
    kept = load_predictions(run_dir / RUN_PREDICTIONS)
    assert set(kept) == {"val", "test"} and kept["val"][2].ndim == 1   # binary: P(1) per clip
    assert run_metric(run_dir, resolve("ap"))["test"] == pytest.approx(metrics["test_ap"], abs=1e-6)
    if keep == "none":
        assert not (run_dir / RUN_WEIGHTS).exists()
        with pytest.raises(InferenceError, match="kept no weights"):
            load_run_model(run_dir)
        return
    ids, probs = score_features(load_run_model(run_dir), layout.features)
    by_id = dict(zip(ids, probs))
    for split in ("val", "test"):
        split_ids, _, p = kept[split]
        assert np.allclose([by_id[c] for c in split_ids], p, atol=1e-5)
