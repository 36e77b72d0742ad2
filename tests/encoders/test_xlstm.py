"""xLSTM: the stabilised parallel mLSTM equals its recurrence, direction, sLSTM bounds and padding."""

from __future__ import annotations

import pytest
import torch

from orze.worker.encoders.xlstm import XLSTM, MLSTMBlock, MLSTMLayer, SLSTMCell, mlstm_parallel, mlstm_recurrent


@pytest.mark.parametrize("T", [1, 7, 40])
def test_parallel_mlstm_equals_the_stabilised_recurrence(T):
    torch.manual_seed(T)
    q, k, v = (torch.randn(2, 3, T, 5, dtype=torch.float64) for _ in range(3))
    ig = torch.randn(2, 3, T, dtype=torch.float64) * 3       # wide gate range exercises the stabiliser
    fg = torch.randn(2, 3, T, dtype=torch.float64) * 3 + 2
    torch.testing.assert_close(mlstm_parallel(q, k, v, ig, fg).double(), mlstm_recurrent(q, k, v, ig, fg),
                               atol=1e-5, rtol=1e-4)


def test_parallel_mlstm_stays_finite_with_extreme_gates():
    q, k, v = (torch.randn(1, 2, 16, 4) for _ in range(3))
    ig = torch.full((1, 2, 16), 80.0)
    fg = torch.full((1, 2, 16), -80.0)
    assert torch.isfinite(mlstm_parallel(q, k, v, ig, fg)).all()


def test_masked_steps_neither_write_nor_decay():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 8, 4) for _ in range(3))
    ig, fg = torch.randn(1, 2, 8), torch.randn(1, 2, 8)
    valid = torch.tensor([[True, True, True, False, False, True, True, True]])
    keep = valid[0]
    full = mlstm_parallel(q, k, v, ig, fg, valid=valid)
    dense = mlstm_parallel(q[:, :, keep], k[:, :, keep], v[:, :, keep], ig[:, :, keep], fg[:, :, keep])
    torch.testing.assert_close(full[:, :, keep], dense)


def test_forward_block_is_causal_and_reverse_block_is_anticausal():
    torch.manual_seed(0)
    for reverse in (False, True):
        block = MLSTMBlock(8, 2, 0.0, reverse=reverse)
        x = torch.randn(1, 10, 8, requires_grad=True)
        block(x, torch.ones(1, 10, dtype=torch.bool))[0, 5].sum().backward()
        dep = x.grad[0].abs().sum(-1)
        if reverse:
            assert (dep[:5] == 0).all() and dep[9] > 0
        else:
            assert (dep[6:] == 0).all() and dep[0] > 0


def test_gate_init_follows_the_reference():
    layer = MLSTMLayer(16, 4)
    assert (layer.fgate.weight == 0).all() and (layer.igate.weight == 0).all()
    torch.testing.assert_close(layer.fgate.bias, torch.linspace(3.0, 6.0, 4))


def test_slstm_hidden_state_is_bounded():
    torch.manual_seed(0)
    cell = SLSTMCell(8, 2)
    h = cell(torch.randn(3, 30, 8) * 2)
    assert torch.isfinite(h).all() and h.abs().max() < 1
    # Saturating inputs: tanh and σ round to 1 in fp32, so the bound can only be met with equality.
    h = cell(torch.randn(3, 30, 8) * 50)
    assert torch.isfinite(h).all() and h.abs().max() <= 1


def test_slstm_carries_state_over_padded_steps():
    torch.manual_seed(0)
    cell = SLSTMCell(8, 2)
    x = torch.randn(1, 6, 8)
    mask = torch.tensor([[True, True, True, False, False, False]])
    h = cell(x, mask)
    assert torch.equal(h[0, 3], h[0, 2]) and torch.equal(h[0, 5], h[0, 2])
    torch.testing.assert_close(h[0, :3], cell(x[:, :3])[0])


def test_xlstm_with_slstm_blocks_runs_and_alternates_direction():
    torch.manual_seed(0)
    m = XLSTM(6, 16, 4, 2, 0.0, slstm_every=2)
    kinds = [type(b).__name__ for b in m.blocks]
    assert kinds == ["MLSTMBlock", "SLSTMBlock", "MLSTMBlock", "SLSTMBlock"]
    assert [b.reverse for b in m.blocks] == [False, True, False, True]
    x = torch.randn(2, 9, 6)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 5:] = False
    y = m(x, mask)
    torch.testing.assert_close(y[1, :5], m(x[1:, :5], mask[1:, :5])[0], atol=1e-5, rtol=1e-4)
