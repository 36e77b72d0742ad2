"""Zipformer pieces against the reference spec's known values and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from orze.worker.encoders.zipformer import RelPositionAttentionWeights, Zipformer, compact_rel_pos, stack_plan
from orze.worker.encoders.zipformer_blocks import BiasNorm, Bypass, SimpleDownsample, SimpleUpsample, swoosh_l, swoosh_r


def grad_at(fn, x0: float) -> float:
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    fn(x).backward()
    return x.grad.item()


def test_swoosh_known_values():
    assert abs(swoosh_r(torch.tensor(0.0, dtype=torch.float64)).item()) < 1e-8   # ≈ 5.2e-10
    assert swoosh_l(torch.tensor(0.0)).item() == pytest.approx(-0.016850, abs=1e-6)
    assert grad_at(swoosh_r, 0.0) == pytest.approx(0.18894, abs=1e-5)
    assert grad_at(swoosh_r, 1.0) == pytest.approx(0.42, abs=1e-6)
    assert grad_at(swoosh_l, 4.0) == pytest.approx(0.42, abs=1e-6)


@pytest.mark.parametrize("fn", [swoosh_r, swoosh_l])
def test_swoosh_finite_at_extremes_and_keeps_dtype(fn):
    x = torch.tensor([-1e4, 1e4, -100.0, 100.0], requires_grad=True)
    y = fn(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    # Linear tails: slope 0.92 far right, −0.08 far left.
    assert x.grad.tolist() == pytest.approx([-0.08, 0.92, -0.08, 0.92], abs=1e-6)
    assert fn(torch.ones(3, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_biasnorm_rms_is_exp_gamma_and_scale_invariant():
    norm = BiasNorm(32)
    with torch.no_grad():
        norm.bias.zero_()
        norm.log_scale.fill_(0.3)
    x = torch.randn(4, 7, 32)
    y = norm(x)
    rms = y.pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, math.exp(0.3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm(x * 17.0), y, atol=1e-5, rtol=1e-5)


def test_biasnorm_gamma_is_clamped():
    norm = BiasNorm(8)
    with torch.no_grad():
        norm.bias.zero_()
        norm.log_scale.fill_(4.0)
    rms = norm(torch.randn(3, 8)).pow(2).mean(-1).sqrt()
    torch.testing.assert_close(rms, torch.full_like(rms, math.exp(1.5)), atol=1e-4, rtol=1e-4)


def test_bypass_endpoints_and_default_clamp():
    x0, x = torch.randn(2, 5, 6), torch.randn(2, 5, 6)
    free = Bypass(6, min_scale=0.0)
    with torch.no_grad():
        free.scale.zero_()
    torch.testing.assert_close(free(x0, x), x0)
    with torch.no_grad():
        free.scale.fill_(1.0)
    torch.testing.assert_close(free(x0, x), x)
    clamped = Bypass(6)   # default: c clamped to [0.2, 1] in train and eval alike
    with torch.no_grad():
        clamped.scale.zero_()
    for mode in (clamped.train(), clamped.eval()):
        torch.testing.assert_close(mode(x0, x), x0 + 0.2 * (x - x0))


@pytest.mark.parametrize("T,ds", [(1, 2), (7, 2), (8, 2), (13, 4), (64, 4)])
def test_downsample_length_and_constant(T, ds):
    down = SimpleDownsample(ds)
    with torch.no_grad():
        down.bias.copy_(torch.randn(ds))     # any window weights: a constant stays constant
    x = torch.full((2, T, 3), 2.5)
    y, m = down(x, torch.ones(2, T, dtype=torch.bool))
    assert y.shape == (2, math.ceil(T / ds), 3) and m.all()
    torch.testing.assert_close(y, torch.full_like(y, 2.5))
    up = SimpleUpsample(ds)(y, T)
    assert up.shape == (2, T, 3)


def test_downsample_starts_as_a_mean_and_ignores_padding():
    down = SimpleDownsample(2)
    x = torch.arange(8.0).reshape(1, 4, 2)
    y, _ = down(x, torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(y, torch.tensor([[[1.0, 2.0], [5.0, 6.0]]]))
    mask = torch.tensor([[True, True, True, False]])
    y, m = down(x, mask)
    torch.testing.assert_close(y[0, 1], x[0, 2])            # the padded frame takes no part
    assert m.tolist() == [[True, True]]


def test_upsample_repeats_and_crops():
    y = SimpleUpsample(3)(torch.tensor([[[1.0], [2.0]]]), 5)
    assert y.flatten().tolist() == [1.0, 1.0, 1.0, 2.0, 2.0]


def test_compact_rel_pos_is_symmetric_in_cos_and_antisymmetric_in_sin():
    pe = compact_rel_pos(9, 48)
    assert pe.shape == (17, 48)
    assert (pe[:, -1] == 1).all()
    flipped = pe.flip(0)
    torch.testing.assert_close(pe[:, 0:46:2], flipped[:, 0:46:2])
    torch.testing.assert_close(pe[:, 1:47:2], -flipped[:, 1:47:2])


def test_attention_rows_sum_to_one_masked_keys_get_zero_and_it_is_not_causal():
    torch.manual_seed(0)
    attn = RelPositionAttentionWeights(16, num_heads=3, query_head_dim=8).eval()
    x = torch.randn(2, 10, 16, requires_grad=True)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, 6:] = False
    A = attn(x, mask)
    assert A.shape == (2, 3, 10, 10)
    torch.testing.assert_close(A.sum(-1), torch.ones(2, 3, 10))
    assert A[1, :, :, 6:].max() < 1e-30
    A[0, :, 2].sum().backward()                        # row of frame 2 depends on frame 7 (the future)
    assert x.grad[0, 7].abs().sum() > 0


def test_zipformer_output_depends_on_both_sides():
    torch.manual_seed(0)
    m = Zipformer(6, 16, 3, 2, 0.0).eval()
    x = torch.randn(1, 12, 6, requires_grad=True)
    m(x, torch.ones(1, 12, dtype=torch.bool))[0, 6].sum().backward()
    assert x.grad[0, 0].abs().sum() > 0 and x.grad[0, 11].abs().sum() > 0


@pytest.mark.parametrize("n,plan", [(1, [(1, 1)]), (2, [(1, 1), (2, 1)]), (3, [(1, 1), (2, 1), (1, 1)]),
                                    (5, [(1, 1), (2, 1), (4, 1), (2, 1), (1, 1)]),
                                    (6, [(1, 2), (2, 1), (4, 1), (2, 1), (1, 1)])])
def test_stack_plan_maps_num_layers(n, plan):
    assert stack_plan(n) == plan
    m = Zipformer(4, 16, n, 2, 0.0)
    assert [s.ds for s in m.stacks] == [ds for ds, _ in plan]
    assert m.num_layers == n


def test_zipformer_full_dim_output_uses_wider_earlier_stacks():
    torch.manual_seed(0)
    m = Zipformer(6, 16, 3, 2, 0.0).eval()          # widths 16, 20, 16 → output combines 16 + 4
    assert m.dims == [16, 20, 16] and m.out_proj.in_features == 20
    x = torch.randn(1, 9, 6)
    mask = torch.ones(1, 9, dtype=torch.bool)
    captured = {}
    m.stacks[1].register_forward_hook(lambda mod, inp, out: captured.setdefault("mid", out))
    m.stacks[2].register_forward_hook(lambda mod, inp, out: captured.setdefault("last", out))
    y = m(x, mask)
    expected = m.out_proj(torch.cat([captured["last"], captured["mid"][..., 16:20]], dim=-1))
    torch.testing.assert_close(y, expected)
