"""Configuration verification catches the reference campaign's four costliest silent bugs.

Each test plants one bug in the real worker (in-process) and shows the daemon's check marks
the run misconfigured, naming the field; the unplanted worker passes the same checks.
"""

import torch

import orze.worker.data as data_mod
import orze.worker.model as model_mod
import orze.worker.train as train_mod
from orze.daemon.verify import config_diffs, protocol_findings
from orze.worker.losses import BCELoss
from orze.worker.pooling import MeanPool
from tests.worker.helpers import run_config

BASE = {"epochs": 1, "d_model": 16, "num_heads": 2, "num_layers": 1, "seq_len": 8}


def test_clean_worker_passes(tiny_dir):
    _, _, _, findings = run_config(tiny_dir, {**BASE, "loss": "focal", "pooling": "attention"})
    assert findings == []


def test_loss_configured_but_not_wired(tiny_dir, monkeypatch):
    monkeypatch.setattr(train_mod, "build_loss", lambda config: BCELoss())
    _, _, _, findings = run_config(tiny_dir, {**BASE, "loss": "focal", "focal_gamma": 3.0})
    assert any(f.startswith("loss: requested 'focal', ran 'bce'") for f in findings), findings
    assert any(f.startswith("focal_gamma:") for f in findings)


def test_pooling_hard_coded(tiny_dir, monkeypatch):
    monkeypatch.setattr(model_mod, "build_pooling", lambda kind, d: MeanPool())
    _, _, _, findings = run_config(tiny_dir, {**BASE, "pooling": "attention"})
    assert "pooling: requested 'attention', ran 'mean'" in findings


def test_split_leak(tiny_dir, monkeypatch):
    real = data_mod.split_ids

    def leaky(path):
        ids = real(path)
        ids["train"] = ids["train"] + ids["val"]  # validation clips leak into training
        return ids

    monkeypatch.setattr(data_mod, "split_ids", leaky)
    _, _, _, findings = run_config(tiny_dir, BASE)
    assert any(f.startswith("split: 'train' clips differ from features/clips.csv") for f in findings), findings


def test_eval_padding_mismatch(tiny_dir, monkeypatch):
    real = data_mod.load_experiment_data

    def mismatched(layout, backbones, seq_len, device, cache=None):
        data = real(layout, backbones, seq_len, device, cache)
        for split in ("val", "test"):  # evaluation padded to a different length than training
            s = data.splits[split]
            s.x = [torch.cat([x, torch.zeros(x.shape[0], 4, x.shape[2])], dim=1) for x in s.x]
            s.mask = torch.cat([s.mask, torch.zeros(s.mask.shape[0], 4, dtype=torch.bool)], dim=1)
        return data

    monkeypatch.setattr(train_mod, "load_experiment_data", mismatched)
    _, _, _, findings = run_config(tiny_dir, BASE)
    assert any(f.startswith("sequence: val evaluation uses") for f in findings), findings


def test_selection_on_test_split_is_caught():
    metrics = {"selection": {"split": "test", "best_epoch": 2},
               "history": [{"val_ap": 0.7}, {"val_ap": 0.6}]}
    eff = {"sequence": {"train": {"seq_len": 8}, "eval": {"val": {"seq_len": 8}}}}
    findings = protocol_findings(eff, metrics, None)
    assert "selection: made on split 'test'; only 'val' may select" in findings
    assert "selection: chose epoch 2 but the val_ap optimum of the history is epoch 1" in findings


def test_missing_and_unreported_fields():
    assert config_diffs({"a": 1, "b": [1, 2], "c": 0.1}, {"a": 1, "b": [1, 2], "c": 0.1 + 1e-12}) == []
    assert config_diffs({"a": 1}, {}) == ["a: requested 1, not reported by the worker"]
    assert config_diffs({"a": "x"}, {"a": "y"}) == ["a: requested 'x', ran 'y'"]
