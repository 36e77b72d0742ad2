"""Pooling, losses and early stopping against the reference spec's values and invariants."""

import math

import pytest
import torch
import torch.nn.functional as F

from orze.worker.data import fit_length
from orze.worker.losses import BCELoss, FocalLoss, LabelSmoothingLoss
from orze.worker.pooling import AttentionPool, LastPool, MaxPool, MeanPool
from orze.worker.train import EarlyStopper


def test_focal_known_value():
    fl = FocalLoss(gamma=2.0, alpha=0.25)
    assert fl(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(0.25 * 0.25 * math.log(2), abs=1e-6)


def test_focal_gamma0_without_alpha_is_bce():
    x, y = torch.randn(50), (torch.rand(50) > 0.5).float()
    assert FocalLoss(0.0, -1.0)(x, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(x, y).item(), rel=1e-6)


def test_focal_below_bce_and_symmetric():
    x, y = torch.randn(100), (torch.rand(100) > 0.5).float()
    assert FocalLoss(2.0, -1.0)(x, y) <= BCELoss()(x, y)
    for v in (-2.0, 0.3, 4.0):
        a = FocalLoss(2.0, 0.25)(torch.tensor([v]), torch.tensor([1.0]))
        b = FocalLoss(2.0, 0.75)(torch.tensor([-v]), torch.tensor([0.0]))
        assert a.item() == pytest.approx(b.item(), rel=1e-4)


def test_focal_finite_gradients_at_extremes():
    x = torch.tensor([50.0, -50.0, 50.0, -50.0], requires_grad=True)
    FocalLoss(2.0, 0.25)(x, torch.tensor([1.0, 0.0, 0.0, 1.0])).backward()
    assert torch.isfinite(x.grad).all()


def test_label_smoothing_targets():
    x = torch.zeros(2)
    ls = LabelSmoothingLoss(0.2)(x, torch.tensor([1.0, 0.0]))
    assert ls.item() == pytest.approx(math.log(2), rel=1e-6)  # at logit 0 the target does not matter
    x = torch.tensor([10.0])
    assert LabelSmoothingLoss(0.2)(x, torch.tensor([1.0])) > BCELoss()(x, torch.tensor([1.0]))


def seq_and_mask():
    torch.manual_seed(0)
    h = torch.randn(3, 6, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    return h, mask


@pytest.mark.parametrize("pool", [AttentionPool(4), MeanPool(), LastPool(), MaxPool()], ids=lambda p: p.kind)
def test_pooling_ignores_padding(pool):
    h, mask = seq_and_mask()
    edited = h.clone()
    edited[~mask] = 1e3 * torch.randn(int((~mask).sum()), 4)
    assert torch.allclose(pool(h, mask), pool(edited, mask), atol=1e-5)


def test_attention_weights_sum_to_one_and_zero_on_padding():
    h, mask = seq_and_mask()
    w = AttentionPool(4).weights(h, mask)
    assert torch.allclose(w.sum(1), torch.ones(3), atol=1e-6)
    assert (w[~mask] == 0).all()
    empty = AttentionPool(4).weights(h, torch.zeros_like(mask))
    assert torch.isfinite(empty).all() and (empty == 0).all()


def test_constant_sequence_pools_to_that_frame():
    frame = torch.randn(1, 1, 4)
    h = frame.expand(1, 5, 4)
    mask = torch.ones(1, 5, dtype=torch.bool)
    for pool in (AttentionPool(4), MeanPool(), LastPool(), MaxPool()):
        assert torch.allclose(pool(h, mask), frame[:, 0], atol=1e-6)


def test_last_pool_takes_last_real_frame():
    h, mask = seq_and_mask()
    out = LastPool()(h, mask)
    assert torch.equal(out[1], h[1, 2]) and torch.equal(out[2], h[2, 0]) and torch.equal(out[0], h[0, 5])


def test_fit_length_crops_centre_and_pads_with_mask():
    x = torch.arange(10.0).view(1, 10, 1)
    cropped, m = fit_length(x, 4)
    assert cropped.flatten().tolist() == [3, 4, 5, 6] and m.all()
    padded, m = fit_length(x, 12)
    assert padded.shape == (1, 12, 1) and m[0, :10].all() and not m[0, 10:].any()
    assert (padded[0, 10:] == 0).all()


def test_early_stopper():
    s = EarlyStopper(patience=2)
    assert s.update(1, 0.5) == (True, False)
    assert s.update(2, 0.4) == (False, False)
    assert s.update(3, 0.6) == (True, False)
    assert s.update(4, 0.6) == (False, False)
    assert s.update(5, 0.1) == (False, True)
    assert s.best_epoch == 3 and s.best == 0.6
