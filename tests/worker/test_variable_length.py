"""Variable-length clips in the worker: the mask comes from the store's lengths, padding never
enters statistics, pooling, attention or the score, and the seq_len policy is recorded and checked.

The padding-invariance proof: one ragged dataset stored twice — padded to 12 frames with the
original frames left in the padding, and padded to 16 with large noise there — trains through the
real job path to identical scores, and both runs pass the daemon's verification.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
import yaml

from orze.config import load_project
from orze.daemon.outcome import judge
from orze.daemon.record import gather
from orze.features.store import open_store, write_store
from orze.layout import Layout
from orze.space import check_idea, load_space
from orze.store.queue import Entry
from orze.verification.checks import Checks
from orze.verification.lengths import check_length_policy
from orze.worker.data import fit_length, length_summary, masked_moments, normalisation_evidence
from orze.worker.job import run_job
from tests.conftest import make_research_dir


def test_fit_length_uses_each_clips_own_length():
    x = torch.arange(2 * 10, dtype=torch.float32).view(2, 10, 1)
    lengths = torch.tensor([7, 3])
    fitted, mask = fit_length(x, 4, lengths)
    # clip 0: 7 real frames, centre 4 are 1..4; clip 1: 3 real frames then one padded position
    assert fitted[0, :, 0].tolist() == [1, 2, 3, 4] and mask[0].all()
    assert fitted[1, :, 0].tolist() == [10, 11, 12, 0] and mask[1].tolist() == [True, True, True, False]
    # the padding of the store never reaches the output
    y = x.clone()
    y[0, 7:] = 1e4
    y[1, 3:] = -1e4
    again, mask2 = fit_length(y, 4, lengths)
    assert torch.equal(again, fitted) and torch.equal(mask2, mask)
    # full-length clips: the same as without lengths (stores written before lengths existed)
    full = torch.tensor([10, 10])
    for seq in (4, 12):
        a, ma = fit_length(x, seq, full)
        b, mb = fit_length(x, seq)
        assert torch.equal(a, b) and torch.equal(ma, mb)


def test_statistics_and_evidence_ignore_padding():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 9, 3, generator=gen) * 2 + 5
    lengths = torch.randint(1, 10, (50,), generator=gen)
    real = torch.cat([x[i, :int(n)] for i, n in enumerate(lengths)]).double()
    x[~(torch.arange(9)[None] < lengths[:, None])] = 1e3      # padding far from the data
    mean, std = masked_moments(x, lengths)
    assert torch.allclose(mean.double(), real.mean(0), atol=1e-5)
    assert torch.allclose(std.double(), real.std(0), atol=1e-5)
    z = (x - mean) / std
    ev = normalisation_evidence(z, lengths)
    assert ev["train_mean_abs_max"] < 1e-4 and ev["train_std_dev_max"] < 1e-4
    assert normalisation_evidence(z.clone())["train_mean_abs_max"] > 1   # with padding counted


def test_length_summary():
    s = length_summary(torch.tensor([2, 4, 10]), 4)
    assert (s["min"], s["max"], s["mean"]) == (2, 10, pytest.approx(16 / 3, abs=1e-4))
    assert s["frames_dropped"] == pytest.approx(6 / 16, abs=1e-6)   # the 10-frame clip loses 6
    assert s["padding"] == pytest.approx(2 / 12, abs=1e-6)        # the 2-frame clip pads 2 of 12


def test_length_policy_check_catches_wrong_figures():
    expect = {"clip_lengths": {"train": [2, 4, 10], "val": [4], "test": [5, 5]}}
    good = {"sequence_lengths": {"crop": "centre", "seq_len": 4, "splits": {
        s: length_summary(torch.tensor(v), 4) for s, v in expect["clip_lengths"].items()}}}
    c = Checks()
    check_length_policy(c, {"seq_len": 4}, good, expect)
    assert not c.findings
    bad = json.loads(json.dumps(good))
    bad["sequence_lengths"]["splits"]["train"]["frames_dropped"] = 0.0   # a crop recorded as lossless
    c = Checks()
    check_length_policy(c, {"seq_len": 4}, bad, expect)
    assert c.findings and c.findings[0].startswith("sequence:") and "train.frames_dropped" in c.findings[0]


# --- end to end ---------------------------------------------------------------------------------

def _raggedise(layout: Layout, frames: int, padding: str, seed: int = 3) -> np.ndarray:
    """Rewrite the vjepa2 store as a ragged one of `frames` stored frames per row, with lengths
    4..12 drawn from `seed`; `padding`: what the padded positions hold."""
    store = open_store(layout.backbone_dir("vjepa2"), "vjepa2", mmap=False)
    lengths = np.random.default_rng(seed).integers(4, 13, len(store.ids))
    src = np.asarray(store.array, dtype=np.float32)
    out = np.zeros((len(store.ids), frames, store.dim), np.float32)
    out[:, :src.shape[1]] = src                    # "original": old frames remain past each length
    noise = np.random.default_rng(99).normal(0, 300, out.shape)
    for i, n in enumerate(lengths):
        if padding == "noise":
            out[i, n:] = noise[i, n:]
    write_store(layout.backbone_dir("vjepa2"), "vjepa2", store.ids, out, dict(store.meta), lengths=lengths)
    return lengths


def _run(layout: Layout, idea: dict, run_id: str):
    check = check_idea(load_space(layout.space_config), idea)
    assert check.ok, check.errors
    run_dir = layout.run_dir(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(check.config))
    code = run_job(run_dir, layout, "cpu")
    ev = gather(layout, load_project(layout), Entry(run_id, "fp", check.config, {}, time.time()),
                run_dir, code, None, 1)
    assert ev.succeeded, ev.failure
    verdict = judge(ev)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    effective = json.loads((run_dir / "effective_config.json").read_text())
    return str(verdict.status), verdict.error, metrics, effective, (run_dir / "train.log").read_text()


IDEAS = [{"pooling": "last", "temporal_encoder": "transformer"},
         {"pooling": "attention", "temporal_encoder": "retnet"}]


def test_appending_padding_changes_no_score(tmp_path):
    base = make_research_dir(tmp_path / "a", clips=96, frames=12, backbones=("vjepa2",))
    shutil.copytree(base.root, tmp_path / "b")
    other = Layout.at(tmp_path / "b")
    lengths = _raggedise(base, 12, "original")
    assert (_raggedise(other, 16, "noise") == lengths).all()
    assert open_store(other.backbone_dir("vjepa2")).frames == 16
    for k, extra in enumerate(IDEAS):
        idea = {"backbone": "vjepa2", "seq_len": 8, "epochs": 2, "d_model": 16, "num_heads": 2,
                "num_layers": 1, "batch_size": 16, "seed": 5, **extra}
        a = _run(base, idea, f"a{k}")
        b = _run(other, idea, f"b{k}")
        for status, error, *_ in (a, b):
            assert status == "done", error         # verification, incl. the length policy, passes
        assert a[2]["val_ap"] == b[2]["val_ap"] and a[2]["test_ap"] == b[2]["test_ap"]
        assert [h["val_ap"] for h in a[2]["history"]] == [h["val_ap"] for h in b[2]["history"]]
        seq = a[3]["sequence_lengths"]
        assert seq == b[3]["sequence_lengths"] and seq["ragged"] and seq["crop"] == "centre"
        assert seq["splits"]["train"]["max"] == 12 and seq["splits"]["train"]["frames_dropped"] > 0
        assert "sequence: seq_len=8" in a[4] and "dropped" in a[4]


def test_verifier_flags_a_worker_that_ignores_lengths(tmp_path, monkeypatch):
    """The planted bug: the worker fits every clip as if full length (padding becomes data)."""
    import orze.worker.data as data_mod

    layout = make_research_dir(tmp_path / "r", clips=96, frames=12, backbones=("vjepa2",))
    _raggedise(layout, 12, "noise")
    real_fit = data_mod.fit_length
    monkeypatch.setattr(data_mod, "fit_length", lambda x, seq_len, lengths=None: real_fit(x, seq_len))
    status, error, *_ = _run(layout, {"backbone": "vjepa2", "seq_len": 8, "epochs": 1, "d_model": 16,
                                      "num_layers": 1, "temporal_encoder": "transformer"}, "bug")
    assert status == "misconfigured"
    assert any(f.startswith("sequence:") for f in error["findings"]), error["findings"]
