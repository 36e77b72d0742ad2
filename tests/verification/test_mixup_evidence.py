"""The mixup check expects as many mixed batches as Beta(α, α) shows, not half of them whatever α:
a correct run with a small α (most draws of λ at 0 or 1) is not misconfigured, and at a usual α a
run whose mixup never fires still is (test_planted_bugs covers the planted forms)."""

import json

import numpy as np
import yaml

from orze.space import check_idea, load_space
from orze.verification.reference import MIXED_TARGET_EPS, mixed_batch_share
from orze.worker.train import run_experiment
from tests.worker.helpers import verify_built_in


def test_mixed_share_is_betas():
    rng = np.random.default_rng(0)
    for alpha in (0.01, 0.05, 0.4, 1.0):
        lam = rng.beta(alpha, alpha, 200_000)
        seen = float(np.mean((lam > MIXED_TARGET_EPS) & (lam < 1 - MIXED_TARGET_EPS)))
        assert abs(mixed_batch_share(alpha) - seen) < 0.01, alpha
    assert mixed_batch_share(0.0) == 0.0


def _run(layout, name, **over):
    config = check_idea(load_space(layout.space_config),
                        {"epochs": 3, "d_model": 16, "num_heads": 2, "seq_len": 8, **over}).config
    run_dir = layout.run_dir(name)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = run_experiment(run_dir, layout, "cpu")
    effective = json.loads((run_dir / "effective_config.json").read_text())
    return config, metrics, effective


def test_a_small_alpha_is_not_misconfigured(tiny_dir):
    config, metrics, effective = _run(tiny_dir, "small", mixup_alpha=0.01)
    mixed = effective["evidence"]["data"]["mixed_batches"] if "data" in effective.get("evidence", {}) else None
    v = verify_built_in(tiny_dir, config, metrics, effective)
    assert not v.findings, (mixed, v.findings)


def test_a_usual_alpha_still_needs_its_mixed_batches(tiny_dir):
    config, metrics, effective = _run(tiny_dir, "usual", mixup_alpha=0.4)
    assert not verify_built_in(tiny_dir, config, metrics, effective).findings
    # the same run's evidence read as if mixup had asked for α 0.4 but never mixed
    ev = json.loads(json.dumps(effective))
    found = []

    def zero(d):
        for k, v in d.items():
            if k == "mixed_batches":
                d[k] = 0
                found.append(k)
            elif isinstance(v, dict):
                zero(v)
    zero(ev)
    assert found
    v = verify_built_in(tiny_dir, config, metrics, ev)
    assert any(f.startswith("mixup_alpha: 0.4 requested") for f in v.findings), v.findings
