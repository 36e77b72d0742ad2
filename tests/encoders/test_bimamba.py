"""Selective SSM: the scans agree with the loop, Ā ∈ (0, 1], direction, padding, init."""

from __future__ import annotations

import math

import pytest
import torch

from orze.worker.encoders.bimamba import (
    BiMamba,
    BiMambaMixer,
    SelectiveScanBranch,
    parallel_scan,
    scan_readout,
    selective_scan,
    sequential_scan,
    set_scan_impl,
)
from orze.worker.encoders.hybrid import Hybrid


def reference_loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    h = torch.zeros_like(b[:, 0])
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("T", [1, 37, 64])
def test_parallel_scan_equals_the_sequential_loop(T):
    torch.manual_seed(T)
    a = torch.rand(3, T, 5, 4, dtype=torch.float64)
    b = torch.randn(3, T, 5, 4, dtype=torch.float64)
    ref = reference_loop(a, b)
    torch.testing.assert_close(parallel_scan(a, b), ref)
    torch.testing.assert_close(sequential_scan(a, b), ref)


def test_scan_gradients_agree():
    torch.manual_seed(0)
    a = torch.rand(2, 20, 3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 20, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 20, 3, 4, dtype=torch.float64)
    grads = []
    for fn in (parallel_scan, sequential_scan):
        ga, gb = torch.autograd.grad((fn(a, b) * w).sum(), (a, b))
        grads.append((ga, gb))
    torch.testing.assert_close(grads[0], grads[1])


def test_readout_paths_agree():
    torch.manual_seed(0)
    a, b, C = torch.rand(2, 11, 3, 4), torch.randn(2, 11, 3, 4), torch.randn(2, 11, 3, 4)
    torch.testing.assert_close(scan_readout(a, b, C, "sequential"), scan_readout(a, b, C, "parallel"))
    with pytest.raises(ValueError, match="parallel"):
        selective_scan(a, b, "blelloch")


def test_discretised_a_bar_in_unit_interval_and_padding_is_identity():
    torch.manual_seed(0)
    br = SelectiveScanBranch(8, 16, 1, 2)
    x = torch.randn(2, 9, 8) * 5
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    a_bar, b, C, u = br.discretise(x, mask)
    assert (a_bar > 0).all() and (a_bar <= 1).all()
    assert (a_bar[1, 6:] == 1).all() and (b[1, 6:] == 0).all() and (u[1, 6:] == 0).all()


def test_init_follows_the_reference():
    br = SelectiveScanBranch(32, 16, 2, 1)
    torch.testing.assert_close(br.A_log[0].exp(), torch.arange(1, 17, dtype=torch.float32))
    assert (br.D == 1).all()
    dt = torch.nn.functional.softplus(br.dt_proj.bias)
    assert dt.min() >= 1e-4 * 0.999 and dt.max() <= 0.1 * 1.001
    assert br.dt_proj.weight.abs().max() <= 2 ** -0.5
    assert br.A_log._no_weight_decay and br.D._no_weight_decay


def _dependence(mixer, T=12, t=6):
    x = torch.randn(1, T, mixer.in_proj.in_features, requires_grad=True)
    mixer(x, torch.ones(1, T, dtype=torch.bool))[0, t].sum().backward()
    return x.grad[0].abs().sum(-1)


def test_unidirectional_block_is_causal_and_bidirectional_sees_both_sides():
    torch.manual_seed(0)
    uni = _dependence(BiMambaMixer(8, 2, bidirectional=False))
    assert (uni[7:] == 0).all() and uni[0] > 0
    bi = _dependence(BiMambaMixer(8, 2, bidirectional=True))
    assert bi[0] > 0 and bi[11] > 0


def test_tied_branches_make_the_mixer_flip_equivariant():
    torch.manual_seed(0)
    mixer = BiMambaMixer(8, 2, bidirectional=True)
    mixer.backward_branch.load_state_dict(mixer.forward_branch.state_dict())
    x = torch.randn(2, 10, 8)
    mask = torch.ones(2, 10, dtype=torch.bool)
    torch.testing.assert_close(mixer(x.flip(1), mask), mixer(x, mask).flip(1), atol=1e-5, rtol=1e-5)


def test_heads_are_groups_with_their_own_b_and_c():
    m1, m4 = BiMambaMixer(16, 1), BiMambaMixer(16, 4)
    assert m1.forward_branch.x_proj.out_features == math.ceil(16 / 16) + 2 * 16
    assert m4.forward_branch.x_proj.out_features == math.ceil(16 / 16) + 2 * 4 * 16


@pytest.mark.parametrize("cls", [BiMamba, Hybrid])
def test_encoder_is_the_same_with_either_scan(cls):
    """The accelerator path (Hillis–Steele) and the CPU path (loop) train the same model."""
    torch.manual_seed(0)
    m = cls(6, 16, 2, 2, 0.0)
    x = torch.randn(3, 13, 6)
    mask = torch.ones(3, 13, dtype=torch.bool)
    mask[1, 8:] = False
    results = []
    for impl in ("parallel", "sequential"):
        set_scan_impl(m, impl)
        m.zero_grad()
        y = m(x, mask)
        (y[mask] ** 2).mean().backward()
        results.append((y.detach(), [p.grad.clone() for p in m.parameters()]))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    for ga, gb in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="sequential"):
        set_scan_impl(m, "cuda")


def test_state_size_is_a_constructor_option():
    m = BiMamba(6, 16, 1, 2, 0.0, d_state=4)
    assert m.blocks[0].mixer.forward_branch.A_log.shape == (32, 4)
    assert Hybrid(6, 16, 1, 2, 0.0, d_state=4).layers[0].mamba.mixer.backward_branch.A_log.shape == (32, 4)
    assert m(torch.randn(2, 5, 6), torch.ones(2, 5, dtype=torch.bool)).shape == (2, 5, 16)
