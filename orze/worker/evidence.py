"""Behavioural evidence from a training run: hooks and counters on what actually happened.

A `Recorder` is attached to the built model for one run. The training loop and `predict` tell it
which phase they are in and hand it what they consumed; it observes, from the objects themselves:
- modes: every forward of the model in the training phase ran in train mode, every evaluation
  forward in eval mode (and, at the first call of each phase segment, every submodule);
- dropout: the share of elements each nn.Dropout zeroed in training (its realised rate) and
  whether any was active during evaluation;
- data: realised batch sizes, rows drawn per epoch, the drawn rows per class (before mixup; the
  positive share of a binary task), the share of batches whose targets were mixed, the noise actually added to the inputs
  (when no mixup blends it), evaluation inputs against the stored split, and the stored frame
  indices that reached the model at training and at each evaluation split;
- optimisation: the learning rate of every parameter group at each step as the optimiser held it
  before stepping, the gradient norm before and after clipping, which parameters ever received a
  gradient, and the seeds of the generators in use.
Accumulators stay on the device (no synchronisation per step); `summary()` reads them once.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from typing import Any

import torch

from orze.verification.reference import MIXED_TARGET_EPS

SAMPLED_STEPS = 8             # dropout rates, mixing, noise and gradient norms are measured on
                              # the first steps of each epoch (counts, sizes, positives and
                              # learning rates on every step)
MAX_LR_POINTS = 512           # the recorded lr trajectory is thinned to at most this many steps
CHECK_ROWS = 8                # rows of each evaluation's input compared with the stored split
NOISE_ROWS = 2                # rows per training batch whose added noise is measured
DROPOUT_ROWS = 4              # rows per dropout call whose zeroed share is measured


def match_frames(fitted: torch.Tensor, stored: torch.Tensor) -> list[int]:
    """For each position of `fitted` (L, D), the index of the stored frame (T, D) it equals, or
    -1 (padding, or a frame that is none of the stored ones)."""
    f, s = fitted.float(), stored.float()
    d = (f[:, None, :] - s[None, :, :]).abs().amax(dim=-1)        # (L, T)
    best = d.min(dim=1)
    return [int(i) if float(v) <= 1e-4 else -1 for v, i in zip(best.values, best.indices)]


def _timed(method):
    """Accumulate the seconds spent in the recorder (its cost, reported as verify_s)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
    return wrapper


class Recorder:
    def __init__(self, model: torch.nn.Module, device: torch.device,
                 unfitted: dict[str, torch.Tensor] | None = None, classes: int = 2):
        self.model, self.device = model, device
        self.classes = classes
        self.seconds = 0.0
        self.unfitted = unfitted or {}
        self.phase: str | None = None
        self._last_phase: str | None = None
        self.modes = {"train": {"calls": 0, "wrong_mode": 0, "modules_wrong": 0},
                      "eval": {"calls": 0, "wrong_mode": 0, "modules_wrong": 0}}
        self.dropouts: dict[str, dict[str, Any]] = {}
        zero = lambda: torch.zeros((), dtype=torch.float32, device=device)  # noqa: E731
        self._zero = zero
        self._hooks = [model.register_forward_pre_hook(self._on_model)]
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Dropout):
                self.dropouts[name] = {"p": float(m.p), "fixed": bool(getattr(m, "fixed", False)),
                                       "zeroed": zero(), "elements": zero(), "train_calls": 0,
                                       "eval_active": 0}
                self._hooks.append(m.register_forward_hook(self._dropout_hook(name)))
        self.epoch_step = 0
        self.steps = 0
        self.batch_sizes: Counter[int] = Counter()
        self.rows_per_epoch: list[int] = []
        self._rows = 0
        self.drawn_classes = torch.zeros(classes, dtype=torch.int64, device=device)
        self.mixed = zero()
        self.batches = 0
        self.sampled_batches = 0
        self.noise_sq, self.noise_n = zero(), zero()
        self.lr: list[list[float]] = []
        self.pre_norm_max, self.post_norm_max = zero(), zero()
        self.clip_gap = zero()      # max over steps of (pre − post) norm: > 0 iff clipping acted
        self.grad_seen: set[str] = set()
        self._params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self._grads: list[torch.Tensor] = []
        self.train_seq: set[int] = set()
        self.eval_seq: set[int] = set()
        self.frames: dict[str, list[int]] = {}
        self.eval_input_residual = zero()
        self._eval_ctx: tuple[str, Any, slice] | None = None
        self.determinism: float | None = None

    # --- hooks ----------------------------------------------------------------------------
    @_timed
    def _on_model(self, module, args):
        ph = self.phase
        if ph not in self.modes:
            return
        rec = self.modes[ph]
        want = ph == "train"
        rec["calls"] += 1
        rec["wrong_mode"] += int(module.training != want)
        if ph != self._last_phase:   # the first forward of a phase segment: every submodule
            self._last_phase = ph
            rec["modules_wrong"] += sum(1 for m in module.modules() if m.training != want)
        xs = args[0] if args else None
        if isinstance(xs, (list, tuple)) and xs:
            (self.train_seq if want else self.eval_seq).add(int(xs[0].shape[1]))
            if not want and self._eval_ctx is not None:
                self._check_eval_input(xs)

    def _dropout_hook(self, name: str):
        @_timed_hook(self)
        def hook(m, inp, out):
            d = self.dropouts[name]
            if self.phase == "train" and self.epoch_step < SAMPLED_STEPS:
                x = inp[0].detach()[:DROPOUT_ROWS]
                nz = x != 0
                d["zeroed"] += ((out.detach()[:DROPOUT_ROWS] == 0) & nz).sum()
                d["elements"] += nz.sum()
                d["train_calls"] += 1      # calls in sampled steps: enough to show it ran
            elif self.phase == "eval" and m.training:
                d["eval_active"] += 1
        return hook

    @_timed
    def _check_eval_input(self, xs) -> None:
        split_name, split, sl = self._eval_ctx
        self._eval_ctx = None     # the first batch of each evaluation is compared
        ref = split.x[0][sl]
        n = min(ref.shape[0], xs[0].shape[0], CHECK_ROWS)
        if xs[0].shape[1:] == ref.shape[1:]:
            self.eval_input_residual = torch.maximum(
                self.eval_input_residual, (xs[0][:n].detach().float() - ref[:n].float()).abs().max())
        else:
            self.eval_input_residual = torch.full((), float("inf"), device=self.device)
        if split_name in self.unfitted and split_name not in self.frames and sl.start == 0:
            self.frames[split_name] = match_frames(xs[0][0].detach(), self.unfitted[split_name])

    # --- phases ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def in_phase(self, phase: str):
        prev, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = prev

    def evaluating(self, split_name: str, split, sl: slice) -> None:
        """predict() is about to run the model on rows `sl` of `split`."""
        if sl.start == 0:
            self._eval_ctx = (split_name, split, sl)

    @_timed
    def begin_epoch(self, train) -> None:
        self.epoch_step = 0
        self._rows = 0
        if "train" in self.unfitted and "train" not in self.frames:
            self.frames["train"] = match_frames(train.x[0][0], self.unfitted["train"])

    def end_epoch(self) -> None:
        self.rows_per_epoch.append(self._rows)

    # --- per step -------------------------------------------------------------------------
    @_timed
    def batch(self, idx: torch.Tensor, y_drawn: torch.Tensor, y_used: torch.Tensor,
              x_drawn: torch.Tensor, x_used: torch.Tensor, mask: torch.Tensor, mixup: bool) -> None:
        n = int(idx.shape[0])
        self.batch_sizes[n] += 1
        self._rows += n
        self.batches += 1
        self.drawn_classes += torch.bincount(y_drawn.long(), minlength=self.classes)[:self.classes]
        if self.epoch_step >= SAMPLED_STEPS:
            return
        self.sampled_batches += 1
        self.mixed += ((y_used > MIXED_TARGET_EPS) & (y_used < 1 - MIXED_TARGET_EPS)).any()
        if not mixup and x_used.shape == x_drawn.shape:
            k = NOISE_ROWS
            m = mask[:k].unsqueeze(-1)
            diff = torch.where(m, x_used[:k].float() - x_drawn[:k].float(), torch.zeros((), device=x_used.device))
            self.noise_sq += (diff * diff).sum()
            self.noise_n += m.sum() * x_used.shape[-1]

    @_timed
    def gradients(self) -> None:
        """After backward, before clipping: coverage and the gradient norm."""
        if self.epoch_step >= SAMPLED_STEPS:
            return
        if len(self.grad_seen) < len(self._params):   # until every parameter has had a gradient
            self.grad_seen.update(n for n, p in self._params if p.grad is not None)
        self._grads = [p.grad for _, p in self._params if p.grad is not None]
        self._pre = _total_norm(self._grads, self.device)
        self.pre_norm_max = torch.maximum(self.pre_norm_max, self._pre)

    @_timed
    def clipped(self) -> None:
        """After clipping (or where clipping would be), before the optimiser steps."""
        if self.epoch_step >= SAMPLED_STEPS:
            return
        post = _total_norm(self._grads, self.device)   # the same tensors, clipped in place
        self.post_norm_max = torch.maximum(self.post_norm_max, post)
        self.clip_gap = torch.maximum(self.clip_gap, self._pre - post)

    @_timed
    def stepping(self, optimiser: torch.optim.Optimizer) -> None:
        """Just before optimiser.step(): the learning rates it is about to apply."""
        self.lr.append([float(g["lr"]) for g in optimiser.param_groups])
        self.steps += 1
        self.epoch_step += 1

    # --- end of run ------------------------------------------------------------------------
    def close(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    @_timed
    def summary(self, optimiser: torch.optim.Optimizer, generator: torch.Generator) -> dict[str, Any]:
        trainable = [n for n, p in self.model.named_parameters() if p.requires_grad]
        step = max(1, -(-len(self.lr) // MAX_LR_POINTS))
        lr_points = [[i, self.lr[i]] for i in range(0, len(self.lr), step)]
        if self.lr and lr_points[-1][0] != len(self.lr) - 1:
            lr_points.append([len(self.lr) - 1, self.lr[-1]])
        drawn = sum(self.rows_per_epoch)
        noise = float(self.noise_sq / self.noise_n) ** 0.5 if float(self.noise_n) > 0 else None
        return {
            "modes": self.modes,
            "dropout": {name: {"p": d["p"], "fixed": d["fixed"], "train_calls": d["train_calls"],
                               "eval_active": d["eval_active"],
                               "observed_rate": (float(d["zeroed"] / d["elements"])
                                                 if float(d["elements"]) > 0 else None),
                               "elements": int(d["elements"])}
                        for name, d in self.dropouts.items()},
            "data": {"batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                     "rows_per_epoch": self.rows_per_epoch, "rows_drawn": drawn,
                     "positives_drawn": int(self.drawn_classes[1:].sum()),
                     "classes_drawn": [int(v) for v in self.drawn_classes.tolist()], "batches": self.batches,
                     "sampled_batches": self.sampled_batches,
                     "mixed_batches": int(self.mixed), "noise_std": noise,
                     "train_seq_len": sorted(self.train_seq), "eval_seq_len": sorted(self.eval_seq),
                     "frames": self.frames,
                     "eval_input_residual": float(self.eval_input_residual)},
            "optimisation": {
                "steps": self.steps, "lr": lr_points,
                "grad_norm_max_before_clip": float(self.pre_norm_max),
                "grad_norm_max_after_clip": float(self.post_norm_max),
                "clip_gap_max": float(self.clip_gap),
                "parameters_trainable": len(trainable),
                "parameters_without_gradient": [n for n in trainable if n not in self.grad_seen],
                "optimiser_class": type(optimiser).__name__,
                "optimiser_module": type(optimiser).__module__,
                "groups": [_group(g) for g in optimiser.param_groups],
                "model_parameters": {"count": len(trainable),
                                     "matrices": sum(1 for _, p in self.model.named_parameters()
                                                     if p.requires_grad and _decayable(p))},
            },
            "seeds": {"torch_initial_seed": int(torch.initial_seed()),
                      "sampler_generator_seed": int(generator.initial_seed())},
            "determinism": self.determinism,
        }


def _timed_hook(rec: "Recorder"):
    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args):
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                rec.seconds += time.perf_counter() - t
        return wrapper
    return deco


def _decayable(p: torch.nn.Parameter) -> bool:
    """Weight matrices are decayed; biases, norms, gains and parameters an encoder marks
    `_no_weight_decay` (SSM A_log, D) are not (the worker's documented policy)."""
    return p.ndim >= 2 and not getattr(p, "_no_weight_decay", False)


def _group(g: dict) -> dict[str, Any]:
    ps = g["params"]
    return {"name": g.get("name"), "weight_decay": float(g.get("weight_decay", 0.0)),
            "params": len(ps), "matrices": sum(1 for p in ps if _decayable(p)),
            "vectors": sum(1 for p in ps if not _decayable(p)),
            "initial_lr": float(g.get("initial_lr", g["lr"])),
            "decoupled": bool(g.get("decoupled_weight_decay", False))}


def _total_norm(grads: list[torch.Tensor], device) -> torch.Tensor:
    if not grads:
        return torch.zeros((), device=device)
    norms = torch._foreach_norm([g.float() for g in grads]) if hasattr(torch, "_foreach_norm") \
        else [g.float().norm() for g in grads]
    return torch.linalg.vector_norm(torch.stack(list(norms)))
