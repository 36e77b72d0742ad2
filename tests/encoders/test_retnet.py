"""Multi-scale retention: decays, the parallel form against the recurrence, causality, padding."""

from __future__ import annotations

import pytest
import torch

from orze.worker.encoders.retnet import (
    MultiScaleRetention,
    RetNet,
    decay_matrix,
    retention_decays,
    retention_parallel,
    retention_recurrent,
)


def test_standard_decays_for_four_heads():
    assert retention_decays(4, "standard").tolist() == [0.96875, 0.984375, 0.9921875, 0.99609375]


def test_short_clip_decays_span_a_few_frames_to_the_whole_clip():
    g = retention_decays(4, "short")
    assert g[0].item() == pytest.approx(0.75) and g[-1].item() == pytest.approx(1 - 2 ** -7)
    assert (g.diff() > 0).all()
    # The widened range actually decays within 64 frames, unlike the standard one.
    assert g[0] ** 8 < 0.2 and retention_decays(4, "standard")[0] ** 8 > 0.75


def test_unknown_decay_schedule_is_named():
    with pytest.raises(ValueError, match="standard"):
        retention_decays(2, "long")


@pytest.mark.parametrize("T", [1, 9, 33])
def test_causal_parallel_form_equals_recurrence(T):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, T, 6, dtype=torch.float64) for _ in range(3))
    g = retention_decays(4, "standard").double()
    D = decay_matrix(g, T, causal=True, normalise=False).double()
    # D is built in fp32 by design (exp of a masked exponent), hence fp32-level tolerances.
    torch.testing.assert_close(retention_parallel(q, k, v, D, normalise=False), retention_recurrent(q, k, v, g),
                               atol=1e-5, rtol=1e-4)


def test_decay_matrix_forms():
    g = torch.tensor([0.5])
    Dc = decay_matrix(g, 4, causal=True, normalise=False)[0]
    assert Dc[3].tolist() == [0.125, 0.25, 0.5, 1.0] and Dc[0, 1] == 0
    Db = decay_matrix(g, 4, causal=False, normalise=False)[0]
    torch.testing.assert_close(Db, Db.T)
    Dn = decay_matrix(g, 4, causal=False, key_mask=torch.tensor([[True, True, True, False]]))[0, 0]
    assert (Dn[:, 3] == 0).all()
    raw = decay_matrix(g, 4, causal=False, normalise=False)[0][:, :3]
    torch.testing.assert_close(Dn[:, :3], raw / raw.sum(-1, keepdim=True).sqrt())


def test_causal_variant_ignores_the_future():
    torch.manual_seed(0)
    msr = MultiScaleRetention(16, 4, causal=True)
    x = torch.randn(2, 10, 16)
    mask = torch.ones(2, 10, dtype=torch.bool)
    y = msr(x, mask)
    x2 = x.clone()
    x2[:, 6:] += torch.randn(2, 4, 16)
    y2 = msr(x2, mask)
    torch.testing.assert_close(y2[:, :6], y[:, :6])
    assert not torch.allclose(y2[:, 6:], y[:, 6:])


def test_bidirectional_retention_sees_both_sides():
    torch.manual_seed(0)
    m = RetNet(8, 16, 1, 4, 0.0).eval()
    x = torch.randn(1, 10, 8, requires_grad=True)
    m(x, torch.ones(1, 10, dtype=torch.bool))[0, 5].sum().backward()
    assert x.grad[0, 0].abs().sum() > 0 and x.grad[0, 9].abs().sum() > 0


def test_no_nan_with_long_clip_and_large_inputs():
    torch.manual_seed(0)
    m = RetNet(8, 16, 2, 4, 0.0)
    y = m(torch.randn(2, 64, 8) * 1e3, torch.ones(2, 64, dtype=torch.bool))
    assert torch.isfinite(y).all()
