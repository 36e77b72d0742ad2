"""The registry contract, checked for every registered encoder (the five of the zoo and the baseline).

Shape, padding (edited padded frames change nothing; a padded clip equals the same clip unpadded),
gradient to every parameter, bf16 autocast, each builder argument changes what is built, and
`describe` reads the build back.
"""

from __future__ import annotations

import pytest
import torch

from orze.worker.encoders import available, build_encoder, describe

ENCODERS = ["zipformer", "retnet", "bimamba", "hybrid", "xlstm", "transformer"]
BASE = dict(input_dim=12, d_model=16, num_layers=2, num_heads=2, dropout=0.0)


def make(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_encoder(name, **{**BASE, **overrides})


def padded_batch(B: int = 3, T: int = 13, D: int = 12, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D, generator=g)
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, 9:] = False
    mask[2, 5:] = False
    return x, mask


def test_registry_offers_the_space_choices():
    assert set(ENCODERS) <= set(available())


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("T", [1, 13, 64])
def test_shape_contract(name, T):
    m = make(name).eval()
    x = torch.randn(2, T, 12)
    mask = torch.ones(2, T, dtype=torch.bool)
    y = m(x, mask)
    assert y.shape == (2, T, 16)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", ENCODERS)
def test_editing_padded_frames_leaves_real_outputs_unchanged(name):
    m = make(name).eval()
    x, mask = padded_batch()
    y = m(x, mask)
    x2 = x.clone()
    x2[~mask] = torch.randn(int((~mask).sum()), x.shape[-1]) * 100
    y2 = m(x2, mask)
    torch.testing.assert_close(y2[mask], y[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ENCODERS)
def test_padded_clip_equals_the_clip_alone(name):
    """Stronger than editing: the amount of padding after a clip has no influence at all."""
    m = make(name).eval()
    x, mask = padded_batch()
    y = m(x, mask)
    for b, length in ((0, 9), (2, 5)):
        alone = m(x[b:b + 1, :length], torch.ones(1, length, dtype=torch.bool))
        torch.testing.assert_close(y[b, :length], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ENCODERS)
def test_gradient_reaches_every_parameter(name):
    m = make(name).train()
    x, mask = padded_batch()
    y = m(x, mask)
    (y[mask] ** 2).mean().backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None, f"{name}.{pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name}.{pname} has an all-zero gradient"


@pytest.mark.parametrize("name", ENCODERS)
def test_no_nan_under_cpu_bf16_autocast(name):
    m = make(name, dropout=0.1).train()
    x, mask = padded_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x, mask)
        loss = (y[mask].float() ** 2).mean()
    loss.backward()
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ENCODERS)
def test_describe_reads_back_the_build(name):
    m = make(name, input_dim=10, d_model=24, num_layers=3, num_heads=4, dropout=0.25)
    d = describe(m)
    assert d["name"] == name
    assert d["class"] == type(m).__name__
    assert (d["input_dim"], d["d_model"], d["num_layers"], d["num_heads"]) == (10, 24, 3, 4)
    assert d["dropout"] == pytest.approx(0.25)
    assert d["parameters"] == sum(p.numel() for p in m.parameters())
    assert isinstance(d["details"], dict)


def test_details_describe_the_architecture_choices():
    assert describe(make("zipformer", num_layers=4))["details"] == {
        "stack_downsampling": [1, 2, 4, 2], "stack_layers": [1, 1, 1, 1], "stack_widths": [16, 20, 24, 20]}
    assert describe(make("retnet", num_heads=2))["details"] == {"decays": [0.75, 0.9921875], "causal": False}
    assert describe(make("bimamba"))["details"]["d_state"] == 16
    assert describe(make("hybrid", num_layers=2))["details"]["block_order"] == ["retention", "mamba"] * 2
    assert describe(make("xlstm", num_layers=3))["details"] == {
        "blocks": ["mlstm"] * 3, "directions": ["forward", "backward", "forward"]}


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("arg,value", [("input_dim", 7), ("d_model", 24), ("num_layers", 3),
                                       ("num_heads", 4), ("dropout", 0.3)])
def test_every_builder_argument_changes_the_module(name, arg, value):
    a, b = make(name), make(name, **{arg: value})
    da, db = describe(a), describe(b)
    key = "dropout" if arg == "dropout" else arg
    assert da[key] != db[key]
    # …and not only its description: what it computes changes too (same seeds, train mode).
    x, mask = padded_batch(D=BASE["input_dim"])
    xb = x[..., :7] if arg == "input_dim" else x
    torch.manual_seed(5)
    ya = a.train()(x, mask)
    torch.manual_seed(5)
    yb = b.train()(xb, mask)
    assert ya.shape != yb.shape or not torch.allclose(ya, yb)
    if arg in ("d_model", "num_layers", "input_dim"):
        assert da["parameters"] != db["parameters"]


@pytest.mark.parametrize("name", ENCODERS)
def test_odd_width_and_single_head(name):
    """The space allows any d_model in 16..512 divisible by num_heads, e.g. 17 with one head."""
    m = make(name, d_model=17, num_heads=1, num_layers=1).eval()
    x, mask = padded_batch()
    assert m(x, mask).shape == (3, 13, 17)


def test_describe_rejects_a_module_that_is_not_an_encoder():
    with pytest.raises(TypeError, match="Linear"):
        describe(torch.nn.Linear(2, 2))


def test_unknown_encoder_names_the_choices():
    with pytest.raises(KeyError, match="available: .*bimamba"):
        build_encoder("lstm", **BASE)


@pytest.mark.parametrize("name", ENCODERS)
def test_learns_a_task_that_needs_order(name):
    """Trainable, not just runnable: the label is whether the marked frame comes before the cue.

    Both events are planted at random real positions of variable-length clips; with masked mean
    pooling only an encoder that relates frames across time can separate the classes (chance loss
    is ln 2 ≈ 0.69; every encoder gets below 0.05 in 80 full-batch steps, the bar is 0.25).
    """
    g = torch.Generator().manual_seed(0)
    n, T, D = 128, 10, 4
    x = torch.randn(n, T, D, generator=g) * 0.1
    lengths = torch.randint(5, T + 1, (n,), generator=g)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    y = torch.zeros(n)
    for i in range(n):
        a, b = torch.randperm(int(lengths[i]), generator=g)[:2].tolist()
        x[i, a, 0] += 1.0            # the marked frame
        x[i, b, 1] += 1.0            # the cue
        y[i] = float(a < b)
    torch.manual_seed(0)
    enc = build_encoder(name, input_dim=D, d_model=16, num_layers=2, num_heads=2, dropout=0.0)
    head = torch.nn.Linear(16, 1)
    opt = torch.optim.Adam(list(enc.parameters()) + list(head.parameters()), lr=1e-2)

    def loss_fn() -> torch.Tensor:
        h = enc(x, mask)
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.nn.functional.binary_cross_entropy_with_logits(head(pooled).squeeze(-1), y)

    first = loss_fn().item()
    for _ in range(80):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    final = loss_fn().item()
    assert first > 0.6 and final < 0.25, f"{name}: loss {first:.3f} → {final:.3f}"
