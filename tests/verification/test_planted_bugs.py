"""The planted-bug suite: realistic bugs planted in the real worker code, one at a time, each run
through the real worker path (orze.worker.job.run_job, the code both warm and cold workers run)
and judged by the daemon's own gather (verification) and judge (outcome). Every planted bug must be recorded `misconfigured`
with a finding naming the field it concerns; the same ideas on clean code must stay `done`.

The suite prints caught / total. It is cheap by construction: 96 tiny synthetic clips, d_model
16, one layer, 1–4 epochs (most runs take about a second on one core).
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

import orze.worker.data as data_mod
import orze.worker.encoders.retnet as retnet_mod
import orze.worker.evaluate as evaluate_mod
import orze.worker.losses as losses_mod
import orze.worker.model as model_mod
import orze.worker.pooling as pooling_mod
import orze.worker.train as train_mod
from orze.config import load_project
from orze.daemon.outcome import judge
from orze.daemon.record import gather
from orze.space import check_idea, load_space
from orze.store.queue import Entry
from orze.worker.job import run_job
from tests.verification.planting import plant

BASE = {"epochs": 2, "d_model": 16, "num_heads": 2, "num_layers": 1, "seq_len": 8, "batch_size": 16,
        "temporal_encoder": "transformer", "patience": 5}


# The ideas the bugs are planted under: each bug needs its knob active (a focal α that differs
# from the hard-coded one, noise with no mixup, …); sharing five ideas keeps the clean controls
# to five runs.
A = {"dropout": 0.3, "loss": "focal", "focal_alpha": 0.6, "focal_gamma": 3.5, "oversample_ratio": 3.0,
     "feature_noise": 0.3, "grad_clip": 0.01, "seed": 7, "weight_decay": 0.05, "scheduler": "cosine",
     "pooling": "attention"}
B = {"loss": "label_smoothing", "label_smoothing": 0.25, "mixup_alpha": 0.4, "scheduler": "linear",
     "pooling": "mean"}
C = {"scheduler": "step", "pooling": "last", "temporal_encoder": "retnet", "num_layers": 2,
     "backbone": ["vjepa2", "dinov2_b"]}
E_STOP = {"epochs": 5, "patience": 1, "learning_rate": 0.01, "batch_size": 32}
E_LONG = {"epochs": 5, "patience": 10, "learning_rate": 0.01, "batch_size": 32}


@dataclass(frozen=True)
class Bug:
    id: str
    group: str            # behaviour | copied read-back | reported, not compared | metric
    owner: Any
    name: str
    old: str
    new: str
    config: dict = field(default_factory=dict)
    expect: str = ""      # a finding must start with this (the field it names)
    also: tuple = ()


T, D, L, P, M, V = train_mod, data_mod, losses_mod, pooling_mod, model_mod, evaluate_mod
BUGS = [
    # --- behaviour that no attribute shows ----------------------------------------------------
    Bug("dropout-on-at-eval", "behaviour", V, "predict", "    model.eval()\n", "    model.train()\n",
        A, "mode:"),
    Bug("eval-mode-never-set", "behaviour", V, "predict", "    model.eval()\n", "    pass\n",
        A, "mode:"),
    Bug("train-mode-not-restored", "behaviour", T, "run_experiment", "        model.train()\n",
        "        if epoch == 0:\n            model.train()\n", A, "mode:"),
    Bug("functional-dropout-at-eval", "behaviour", M.ClipClassifier, "forward",
        "self.head(self.head_dropout(self.pooling(h, mask)))",
        "self.head(torch.nn.functional.dropout(self.pooling(h, mask), self.head_dropout.p, training=True))",
        A, "eval:"),
    Bug("focal-alpha-hard-coded", "behaviour", L.FocalLoss, "forward",
        "loss = loss * (self.alpha * y + (1 - self.alpha) * (1 - y))", "loss = loss * (0.25 * y + 0.75 * (1 - y))",
        A, "loss:"),
    Bug("focal-gamma-hard-coded", "behaviour", L.FocalLoss, "forward", "** self.gamma", "** 2.0",
        A, "loss:"),
    Bug("focal-alpha-inverted", "behaviour", L.FocalLoss, "forward",
        "(self.alpha * y + (1 - self.alpha) * (1 - y))", "((1 - self.alpha) * y + self.alpha * (1 - y))",
        A, "loss:"),
    Bug("label-smoothing-hard-coded", "behaviour", L.LabelSmoothingLoss, "forward",
        "(1 - self.smoothing) + share * self.smoothing", "(1 - 0.1) + share * 0.1",
        B, "loss:"),
    Bug("label-smoothing-one-sided", "behaviour", L.LabelSmoothingLoss, "forward",
        "(1 - self.smoothing) + share * self.smoothing", "(1 - self.smoothing)",
        B, "loss:"),
    Bug("mixup-never-fires", "behaviour", T.Augment, "__call__", "if self.mixup_alpha > 0 and",
        "if self.mixup_alpha > 1 and", B, "mixup_alpha:"),
    Bug("mixup-labels-not-mixed", "behaviour", T.Augment, "__call__",
        "y = lam * y + (1 - lam) * y[perm]", "y = y", B, "mixup_alpha:"),
    Bug("noise-at-eval", "behaviour", V, "predict",
        "logits = model([x[sl] for x in split.x], split.mask[sl])",
        "logits = model([x[sl] + 0.1 * torch.randn_like(x[sl]) for x in split.x], split.mask[sl])",
        A, "eval:"),
    Bug("noise-never-applied", "behaviour", T.Augment, "__call__", "if self.feature_noise > 0:",
        "if self.feature_noise > 1:", A, "feature_noise:"),
    Bug("noise-half-scale", "behaviour", T.Augment, "__call__", "x + self.feature_noise * m *",
        "x + 0.5 * self.feature_noise * m *", A, "feature_noise:"),
    Bug("oversampling-no-effect", "behaviour", T.EpochSampler, "batches",
        "if self.oversample_ratio == 1.0:", "if True:", A, "oversample_ratio:"),
    Bug("oversampling-inverted", "behaviour", T.EpochSampler, "batches",
        "self.oversample_ratio, 1.0)", "1.0, self.oversample_ratio)", A,
        "oversample_ratio:"),
    Bug("eval-crops-other-frames", "behaviour", D, "load_experiment_data",
        "fitted, mask = fit_length(x, seq_len, lengths[s])",
        "fitted, mask = fit_length(x, seq_len, lengths[s]) if s == 'train' else "
        "(x[:, :seq_len], torch.ones(x.shape[0], seq_len, dtype=torch.bool, device=x.device))",
        A, "sequence:", (T,)),
    Bug("crop-from-start", "behaviour", D, "fit_length", "start = (t - seq_len) // 2", "start = 0",
        A, "sequence:"),
    Bug("labels-misaligned", "behaviour", D, "load_experiment_data",
        "[labels[c] for c in ids[s]]", "[labels[c] for c in reversed(ids[s])]", A, "labels:", (T,)),
    Bug("feature-rows-misaligned", "behaviour", D, "load_backbone", "store.rows(ids[s])",
        "store.rows(ids[s][::-1])", A, "features:"),
    Bug("normalisation-from-all-rows", "behaviour", D, "load_backbone",
        'mean = arrays["train"].mean(dim=(0, 1))',
        'mean = torch.cat([arrays[s] for s in SPLITS]).mean(dim=(0, 1))', A, "normalisation:"),
    Bug("normalisation-from-val", "behaviour", D, "load_backbone",
        'std = arrays["train"].std(dim=(0, 1))', 'std = arrays["val"].std(dim=(0, 1))', A,
        "normalisation:"),
    Bug("block-never-runs", "behaviour", retnet_mod.RetNet, "forward", "for block in self.blocks:",
        "for block in self.blocks[:1]:", C, "model:"),
    Bug("encoder-ignores-mask", "behaviour", M.ClipClassifier, "forward",
        "self.encoder(self.fusion(xs), mask)", "self.encoder(self.fusion(xs), torch.ones_like(mask))",
        A, "padding:"),
    Bug("patience-off-by-one", "behaviour", T.EarlyStopper, "update",
        "self.stale >= self.patience", "self.stale > self.patience",
        E_STOP, "epochs:"),
    Bug("attention-pooling-returns-mean", "behaviour", P.AttentionPool, "forward",
        'return torch.einsum("bt,btd->bd", a.to(h.dtype), h)',
        "return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)",
        A, "pooling:"),
    Bug("attention-ignores-mask", "behaviour", P.AttentionPool, "weights",
        's = s.masked_fill(~mask, float("-inf"))', "s = s", A, "pooling:"),
    Bug("mean-pooling-ignores-mask", "behaviour", P.MeanPool, "forward",
        "return (h * m).sum(1) / m.sum(1).clamp(min=1.0)", "return h.mean(1)", B,
        "pooling:"),
    Bug("last-pooling-takes-last-position", "behaviour", P.LastPool, "forward",
        "return h[torch.arange(h.shape[0], device=h.device), last]", "return h[:, -1]",
        C, "pooling:"),
    # --- read-back fields that were copies of the request -------------------------------------
    Bug("one-epoch-short", "copied read-back", T, "run_experiment", "for epoch in range(n_epochs):",
        "for epoch in range(n_epochs - 1):", A, "epochs:"),
    Bug("grad-clip-hard-coded", "copied read-back", T, "run_experiment",
        "clip_grad_norm_(model.parameters(), clip)", "clip_grad_norm_(model.parameters(), 1.0)",
        A, "grad_clip:"),
    Bug("grad-clip-never-applied", "copied read-back", T, "run_experiment", "if clip > 0:",
        "if clip > 50:", A, "grad_clip:"),
    Bug("seed-hard-coded", "copied read-back", T, "run_experiment", "    set_seed(seed)\n",
        "    set_seed(0)\n", A, "seed:"),
    # --- values that were reported but never compared -----------------------------------------
    Bug("empty-weight-decay-group", "reported, not compared", T, "build_optimiser", "p.ndim < 2",
        "p.ndim < 3", A, "weight_decay:"),
    Bug("adam-instead-of-adamw", "reported, not compared", T, "build_optimiser", "torch.optim.AdamW(",
        "torch.optim.Adam(", A, "optimiser:"),
    Bug("scheduler-never-steps", "reported, not compared", T, "run_experiment",
        "            scheduler.step()\n", "            pass\n", A, "scheduler:"),
    Bug("scheduler-horizon-in-epochs", "reported, not compared", T, "run_experiment",
        'config["scheduler"], steps_per_epoch * config["epochs"])', 'config["scheduler"], config["epochs"])',
        B, "scheduler:"),
    Bug("step-decay-wrong-gamma", "reported, not compared", T, "build_scheduler", "gamma=0.3", "gamma=0.1",
        C, "scheduler:"),
    Bug("batch-size-hard-coded", "reported, not compared", T.EpochSampler, "batches",
        "order.split(self.batch_size)", "order.split(32)", A, "batch_size:"),
    Bug("last-batch-dropped", "reported, not compared", T.EpochSampler, "batches",
        "return list(order.split(self.batch_size))", "return list(order.split(self.batch_size))[:-1]",
        A, "batch_size:"),
    Bug("one-store-loaded-twice", "reported, not compared", D, "load_experiment_data",
        "tensors, lens, info = load_backbone(layout, b, ids, device)",
        "tensors, lens, info = load_backbone(layout, backbones[0], ids, device)",
        C, "backbone:", (T,)),
    Bug("head-dropout-hard-coded", "reported, not compared", M.ClipClassifier, "__init__",
        "self.head_dropout = nn.Dropout(dropout)", "self.head_dropout = nn.Dropout(0.1)",
        A, "dropout:"),
    # --- the metric -------------------------------------------------------------------------
    Bug("metric-from-last-epoch", "metric", T, "run_experiment", "    model.load_state_dict(best_state)\n",
        "    pass\n", E_LONG, "metric:"),
    Bug("metric-is-test-metric", "metric", T, "run_experiment", '"metric": val.values[spec.name],',
        '"metric": test.values[spec.name],', A, "metric:"),
    Bug("selection-on-test-split", "metric", T, "run_experiment",
        'val = score_split(model, data.splits["val"], autocast, task, classes.count, rec, "val")',
        'val = score_split(model, data.splits["test"], autocast, task, classes.count, rec, "test")',
        E_LONG, "metric:"),
]

_ids = itertools.count()


def run_idea(layout, overrides: dict) -> tuple[str, Any, dict, dict]:
    """Run one idea through the worker's job path and the daemon's judge: (status, error,
    verification summary, config)."""
    check = check_idea(load_space(layout.space_config), {**BASE, **overrides})
    assert check.ok, check.errors
    run_id = f"planted{next(_ids):04d}"
    run_dir = layout.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(check.config))
    code = run_job(run_dir, layout, "cpu")
    entry = Entry(run_id, "fp", check.config, {}, time.time())
    ev = gather(layout, load_project(layout), entry, run_dir, code, None, 1)
    if not ev.succeeded:
        return "failed", ev.failure or {}, {}, check.config
    verdict = judge(ev)
    return str(verdict.status), verdict.error, ev.verification or {}, check.config


@pytest.fixture(scope="module")
def outcomes(tiny_dir):
    """Each bug planted and run, then removed; and the clean control of every distinct idea."""
    results = {}
    for bug in BUGS:
        with pytest.MonkeyPatch.context() as mp:
            plant(mp, bug.owner, bug.name, bug.old, bug.new, bug.also)
            results[bug.id] = run_idea(tiny_dir, bug.config)
    controls = {}
    for bug in BUGS:
        key = json.dumps(bug.config, sort_keys=True)
        if key not in controls:
            controls[key] = run_idea(tiny_dir, bug.config)
    caught = [b.id for b in BUGS if results[b.id][0] == "misconfigured"]
    print(f"\nplanted-bug suite: caught {len(caught)} / {len(BUGS)}; "
          f"clean controls done {sum(c[0] == 'done' for c in controls.values())} / {len(controls)}")
    for b in BUGS:
        status, error, _, _ = results[b.id]
        first = (error or {}).get("findings", [(error or {}).get("message", "")])[:1]
        print(f"  {'CAUGHT' if status == 'misconfigured' else 'MISSED'} {b.id:34s} [{b.group}] {first}")
    return results, controls


def test_bug_table_is_large_and_distinct():
    assert len(BUGS) >= 30
    assert len({b.id for b in BUGS}) == len(BUGS)
    assert len({(b.owner, b.name, b.old, b.new) for b in BUGS}) == len(BUGS)


@pytest.mark.parametrize("bug", BUGS, ids=[b.id for b in BUGS])
def test_planted_bug_is_caught(outcomes, bug):
    status, error, summary, _ = outcomes[0][bug.id]
    assert status == "misconfigured", f"{bug.id}: recorded {status} ({error})"
    assert summary["level"] == "behavioural" and summary["checks_passed"] < summary["checks_total"]
    assert any(f.startswith(bug.expect) for f in error["findings"]), (bug.expect, error["findings"])


def test_clean_controls_stay_done(outcomes):
    for key, (status, error, summary, _) in outcomes[1].items():
        assert status == "done", (key, error)
        assert summary["level"] == "behavioural"
        assert summary["checks_passed"] == summary["checks_total"] >= 40
