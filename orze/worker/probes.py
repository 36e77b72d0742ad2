"""Build-time probes: the modules the worker built, run on fixed inputs, before training.

Each probe records what the module returned (never what it was configured with); the daemon
compares the numbers with the reference computed from the requested configuration
(orze.verification.reference). Probes use no global random state and restore the model's mode,
so they never change what training does.

- loss: value and gradient on the fixed logits/targets of `reference.LOSS_*` (multi-class:
  `reference.multiclass_loss_input(K)`);
- pooling: the first dimensions of the output on a non-uniform input with a partial mask and
  large values at padded positions; for attention pooling also the distance from an independent
  evaluation of the attention formula with the module's own weights, and from the masked mean;
- padding: the classifier end to end, in eval mode, on a masked batch and on the same batch with
  different values at padded positions (padding must not change the output); the batch's lengths
  are fixed ones (full, one short, a single frame, half) plus the shortest, median and longest
  real lengths of the training split as fitted, so a ragged store's own lengths are probed.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from orze.verification import reference as ref


def loss_probe(loss_fn: torch.nn.Module, outputs: int = 1) -> dict[str, Any]:
    """`outputs`: the head's logits per clip (1: the binary probe; K: the multi-class one)."""
    if outputs > 1:
        logits, targets = ref.multiclass_loss_input(outputs)
    else:
        logits, targets = ref.LOSS_LOGITS, ref.LOSS_TARGETS
    z = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    y = torch.tensor(targets, dtype=torch.float32)
    value = loss_fn(z, y)
    value.backward()
    return {"value": float(value.detach()), "grad": [float(g) for g in z.grad.reshape(-1)],
            "outputs": outputs}


def _attention_reference(pool: torch.nn.Module, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """score_t = wᵀ tanh(W h_t + b), softmax over real frames, Σ α_t h_t: written out here with the
    module's own weights, independently of its forward."""
    proj, score = getattr(pool, "proj", None), getattr(pool, "score", None)
    if not isinstance(proj, torch.nn.Linear) or not isinstance(score, torch.nn.Linear):
        return None
    s = torch.tanh(h @ proj.weight.T + proj.bias) @ score.weight.T
    s = s.squeeze(-1).masked_fill(~mask, float("-inf"))
    a = torch.softmax(s, dim=1)
    return torch.einsum("bt,btd->bd", a, h)


@torch.no_grad()
def pooling_probe(pool: torch.nn.Module, d_model: int, device: torch.device) -> dict[str, Any]:
    h_list, mask_list = ref.pooling_input(d_model)
    h = torch.tensor(h_list, dtype=torch.float32, device=device)
    mask = torch.tensor(mask_list, dtype=torch.bool, device=device)
    was = pool.training
    pool.eval()
    try:
        out = pool(h, mask).float()
    finally:
        pool.train(was)
    rec: dict[str, Any] = {"output": out[:, :ref.POOL_DIMS].cpu().tolist()}
    m = mask.unsqueeze(-1).float()
    mean = (torch.where(mask.unsqueeze(-1), h, torch.zeros_like(h))).sum(1) / m.sum(1)
    rec["distance_from_mean"] = float((out - mean).abs().max())
    att = _attention_reference(pool, h, mask)
    rec["attention_error"] = None if att is None else float((out - att).abs().max())
    rec["scale"] = float(h.masked_fill(~mask.unsqueeze(-1), 0).abs().max())
    return rec


@torch.no_grad()
def padding_probe(model: torch.nn.Module, dims: list[int], seq_len: int, device: torch.device,
                  autocast: Callable, stored_lengths: torch.Tensor | None = None) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(12345)   # a private generator: global RNG untouched
    lengths = [seq_len, max(1, seq_len - 1), 1, max(1, (seq_len + 1) // 2)]
    if stored_lengths is not None and len(stored_lengths):
        seen = stored_lengths.clamp(1, seq_len).sort().values
        lengths += [int(seen[0]), int(seen[len(seen) // 2]), int(seen[-1])]
    mask = torch.tensor([[t < n for t in range(seq_len)] for n in lengths], device=device)
    xs = [torch.randn(len(lengths), seq_len, d, generator=gen).to(device) for d in dims]
    other = [torch.where(mask.unsqueeze(-1), x, 10 * torch.randn(x.shape, generator=gen).to(device))
             for x in xs]
    was = model.training
    model.eval()
    try:
        with autocast():
            a = model(xs, mask).float()
            b = model(other, mask).float()
    finally:
        model.train(was)
    return {"max_change": float((a - b).abs().max()), "scale": float(a.abs().max()), "lengths": lengths,
            "finite": bool(torch.isfinite(a).all() and torch.isfinite(b).all())}
