"""Fixed probe inputs and reference formulas, in plain Python (no torch, no numpy).

The worker feeds the probe inputs to the modules it actually built and records what they
returned; the daemon recomputes the expected values here from the *requested* configuration. A
module whose code differs from what its name promises (an α hard-coded in a loss's forward, an
attention pooling that returns a mean) then disagrees with its reference, whatever attributes it
carries.
"""

from __future__ import annotations

import math
from typing import Any, Callable

# --- losses ---------------------------------------------------------------------------------

# Logits spread over the range where the losses differ, with hard and soft (mixup) targets.
LOSS_LOGITS = [-4.0, -1.5, -0.3, 0.0, 0.4, 1.2, 2.5, 5.0, -2.2, 0.8, 3.1, -0.7]
LOSS_TARGETS = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.3, 0.7, 1.0, 0.0]


def _softplus(z: float) -> float:
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _bce(z: float, t: float) -> float:
    return _softplus(z) - t * z


def _focal(gamma: float, alpha: float) -> Callable[[float, float], float]:
    def f(z: float, y: float) -> float:
        p = _sigmoid(z)
        p_t = p * y + (1 - p) * (1 - y)
        loss = _bce(z, y) * max(0.0, 1 - p_t) ** gamma
        if alpha >= 0:
            loss *= alpha * y + (1 - alpha) * (1 - y)
        return loss
    return f


def elementwise_loss(config: dict[str, Any]) -> Callable[[float, float], float] | None:
    """The requested loss as a function of (logit, target), or None for an unknown loss."""
    kind = config.get("loss")
    if kind == "bce":
        return _bce
    if kind == "label_smoothing":
        eps = float(config["label_smoothing"])
        return lambda z, y: _bce(z, y * (1 - eps) + 0.5 * eps)
    if kind == "focal":
        return _focal(float(config["focal_gamma"]), float(config["focal_alpha"]))
    return None


def loss_reference(config: dict[str, Any], outputs: int = 1) -> dict[str, Any] | None:
    """Mean loss over the probe batch and its gradient with respect to each logit (central
    differences in double precision), for the requested loss and parameters. `outputs`: the
    head's logits per clip (1: binary; K: the multi-class form on `multiclass_loss_input(K)`)."""
    if outputs > 1:
        return _multiclass_reference(config, outputs)
    f = elementwise_loss(config)
    if f is None:
        return None
    n = len(LOSS_LOGITS)
    value = sum(f(z, y) for z, y in zip(LOSS_LOGITS, LOSS_TARGETS)) / n
    h = 1e-5
    grad = [(f(z + h, y) - f(z - h, y)) / (2 * h) / n for z, y in zip(LOSS_LOGITS, LOSS_TARGETS)]
    return {"value": value, "grad": grad}


MC_ROWS = 6


def multiclass_loss_input(k: int) -> tuple[list[list[float]], list[list[float]]]:
    """(MC_ROWS, K) logits from LOSS_LOGITS, and targets: one-hot rows, every other one mixed
    0.7/0.3 with the next class (mixup's soft targets)."""
    logits = [[LOSS_LOGITS[(i * k + c) % len(LOSS_LOGITS)] * (1 + 0.1 * c) for c in range(k)]
              for i in range(MC_ROWS)]
    targets = []
    for i in range(MC_ROWS):
        t = [0.0] * k
        if i % 2:
            t[i % k] += 0.7
            t[(i + 1) % k] += 0.3
        else:
            t[i % k] = 1.0
        targets.append(t)
    return logits, targets


def _cross_entropy(z: list[float], t: list[float]) -> float:
    top = max(z)
    lse = top + math.log(sum(math.exp(v - top) for v in z))
    return sum(tc * (lse - zc) for zc, tc in zip(z, t))


def _multiclass_row_loss(config: dict[str, Any], k: int) -> Callable[[list[float], list[float]], float] | None:
    kind = config.get("loss")
    if kind == "bce":
        return _cross_entropy
    if kind == "label_smoothing":
        eps = float(config["label_smoothing"])
        return lambda z, t: _cross_entropy(z, [tc * (1 - eps) + eps / k for tc in t])
    if kind == "focal":
        f = _focal(float(config["focal_gamma"]), float(config["focal_alpha"]))
        return lambda z, t: sum(f(zc, tc) for zc, tc in zip(z, t))
    return None


def _multiclass_reference(config: dict[str, Any], k: int) -> dict[str, Any] | None:
    f = _multiclass_row_loss(config, k)
    if f is None:
        return None
    logits, targets = multiclass_loss_input(k)
    n = len(logits)
    value = sum(f(z, t) for z, t in zip(logits, targets)) / n
    h, grad = 1e-5, []
    for z, t in zip(logits, targets):
        for c in range(k):
            up, down = list(z), list(z)
            up[c] += h
            down[c] -= h
            grad.append((f(up, t) - f(down, t)) / (2 * h) / n)
    return {"value": value, "grad": grad}


# --- pooling --------------------------------------------------------------------------------

POOL_T = 6
POOL_DIMS = 8            # the dimensions of the pooled output that are recorded and compared
POOL_LENGTHS = [4, 6, 1]  # real frames per probe row: partial, full, a single frame
POOL_PAD_VALUE = 50.0     # padded positions hold a large value, so pooling that reads them shows


def pooling_input(d_model: int) -> tuple[list[list[list[float]]], list[list[bool]]]:
    """(B, T, d) non-uniform values, varying over time differently per dimension, and a mask."""
    h, mask = [], []
    for b, n in enumerate(POOL_LENGTHS):
        rows, m = [], []
        for t in range(POOL_T):
            real = t < n
            m.append(real)
            rows.append([math.sin(0.9 * t * t + 0.37 * k + 1.7 * b) * (1.0 + 0.5 * t) + 0.1 * k
                         if real else POOL_PAD_VALUE for k in range(d_model)])
        h.append(rows)
        mask.append(m)
    return h, mask


def pooling_reference(kind: str, d_model: int) -> list[list[float]] | None:
    """The first POOL_DIMS dimensions of the expected pooled output, for the parameter-free
    poolings; None for attention (its reference needs the module's weights; see the worker's probe)."""
    h, mask = pooling_input(d_model)
    out = []
    for rows, m in zip(h, mask):
        real = [r for r, ok in zip(rows, m) if ok]
        dims = range(min(POOL_DIMS, d_model))
        if kind == "mean":
            out.append([sum(r[k] for r in real) / len(real) for k in dims])
        elif kind == "max":
            out.append([max(r[k] for r in real) for k in dims])
        elif kind == "last":
            out.append([real[-1][k] for k in dims])
        else:
            return None
    return out


# --- learning-rate schedules -----------------------------------------------------------------

def planned_steps(train_size: int, batch_size: int, epochs: int) -> tuple[int, int]:
    """(steps per epoch, total steps the schedule spans)."""
    per_epoch = math.ceil(train_size / batch_size)
    return per_epoch, max(1, per_epoch * epochs)


def lr_at(scheduler: str, base: float, step: int, total: int) -> float | None:
    """The learning rate applied at optimiser step `step` (0-based) by the requested schedule:
    cosine to 0 over `total` steps, linear from 1 to 0.01 over `total`, or ×0.3 every total//3."""
    if scheduler == "cosine":
        return base * (1 + math.cos(math.pi * min(step, total) / total)) / 2
    if scheduler == "linear":
        return base * (1.0 + (0.01 - 1.0) * min(step, total) / total)
    if scheduler == "step":
        return base * 0.3 ** (step // max(1, total // 3))
    return None


# --- sampling ---------------------------------------------------------------------------------

MIXED_TARGET_EPS = 1e-6   # a target this far inside (0, 1) counts as mixed (the worker's recorder)


def mixed_batch_share(alpha: float, eps: float = MIXED_TARGET_EPS) -> float:
    """The chance that mixup's λ ~ Beta(α, α) lands where a mixed target can be seen, eps < λ <
    1 - eps. Near 1 for usual α; for a small α most draws sit at 0 or 1 (about 13% are seen at α
    0.01), so "few batches mixed" is then what a correct run shows."""
    if alpha <= 0:
        return 0.0
    from scipy.special import betainc
    return float(max(0.0, 1.0 - 2.0 * betainc(alpha, alpha, eps)))


def expected_positive_fraction(positives: int, n: int, ratio: float) -> float:
    """Share of positives among drawn rows when positives are drawn `ratio` times as often."""
    pi = positives / max(n, 1)
    return ratio * pi / (ratio * pi + (1 - pi)) if n else 0.0


def expected_class_fractions(counts: list[int], ratio: float) -> list[float]:
    """Share of each class among drawn rows of a multi-class task: a row of class c is drawn with
    weight min(ratio, n_max / n_c), so a rare class is drawn up to `ratio` times as often as its
    natural rate, never beyond balance."""
    top = max(counts) if counts else 0
    w = [n * min(ratio, top / n) if n else 0.0 for n in counts]
    total = sum(w)
    return [x / total if total else 0.0 for x in w]


def expected_epochs(values: list[float | None], epochs: int, patience: int, direction: str = "max") -> int:
    """Epochs early stopping runs on this validation history: stop after `patience` epochs
    without a strictly better value in the metric's direction (NaN never improves), or after
    `epochs`."""
    sign = 1.0 if direction == "max" else -1.0
    best, stale = -math.inf, 0
    for i, v in enumerate(values[:epochs], 1):
        if isinstance(v, (int, float)) and not math.isnan(v) and sign * v > best:
            best, stale = sign * v, 0
        else:
            stale += 1
            if stale >= patience:
                return i
    return epochs   # never stopped within the history: it should have run every epoch


def centre_window(stored: int, seq_len: int) -> list[int]:
    """Stored frame indices at each of `seq_len` positions (-1 = padding): centre crop or pad."""
    if stored >= seq_len:
        start = (stored - seq_len) // 2
        return list(range(start, start + seq_len))
    return list(range(stored)) + [-1] * (seq_len - stored)
