"""Checks over the built-in worker's behavioural evidence (effective_config.json's `evidence`).

`behaviour_checks(config, effective, metrics, expect)` compares what the run observed with what
the requested configuration implies, using the daemon's own expectations (`expect`, computed from
the research directory: split sizes and positives, labels hashes, hashes of stored feature rows,
stored frames per clip). Each check and what it catches is listed in docs/verification.md.
"""

from __future__ import annotations

import math
from typing import Any

from orze.verification import reference as ref
from orze.verification.checks import Checks, close, number
from orze.verification.lengths import check_length_policy, expected_windows
from orze.verification.metric import MetricSpec

FP32_TOL = 1e-4
BF16_TOL = 5e-2


def behaviour_checks(config: dict[str, Any], effective: dict[str, Any], metrics: dict[str, Any],
                     expect: dict[str, Any], spec: MetricSpec = MetricSpec()) -> Checks:
    """`expect["task"]` (orze.daemon.expect.task_expectations): the task type and classes the
    daemon reads from configs/orze.yaml and features/clips.csv; `spec`: the ranked metric."""
    c = Checks()
    ev = effective.get("evidence")
    if not isinstance(ev, dict):
        c.fail("evidence: effective_config.json has no behavioural evidence; the built-in worker "
               "always records it")
        return c
    low_precision = (effective.get("eval_mode") or {}).get("autocast") not in (None, "off")
    tol = BF16_TOL if low_precision else FP32_TOL
    for part in (_probes, _modes, _dropout, _data, _optimisation, _seeds_epochs):
        try:
            part(c, config, effective, ev, metrics, expect, tol, spec)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, ZeroDivisionError) as e:
            c.fail(f"evidence: malformed ({part.__name__.strip('_')}: {type(e).__name__}: {e})")
    return c


# --- build-time probes ------------------------------------------------------------------------

def _probes(c, config, effective, ev, metrics, expect, tol, _):
    p = ev["probes"]
    outputs = _outputs(expect, effective)
    want = ref.loss_reference(config, outputs)
    loss = p["loss"]
    c.check("task.head_outputs", effective.get("head_outputs", 1) == outputs,
            f"task: the head has {effective.get('head_outputs')} output(s); the task's classes in "
            f"features/clips.csv need {outputs}")
    if want is None:
        c.fail(f"loss: no reference for requested loss {config.get('loss')!r}")
    else:
        c.check("probe.loss_value", close(loss["value"], want["value"], rel=FP32_TOL, abs_=1e-6),
                f"loss: the built loss gives {loss['value']:.6g} on the probe batch; requested "
                f"{_loss_desc(config)} gives {want['value']:.6g}")
        scale = max(abs(g) for g in want["grad"])
        err = max(abs(a - b) for a, b in zip(loss["grad"], want["grad"])) if len(loss["grad"]) == len(want["grad"]) else math.inf
        c.check("probe.loss_gradient", err <= FP32_TOL * scale + 1e-7,
                f"loss: gradient on the probe batch differs from {_loss_desc(config)}'s by {err:.3g} "
                f"(scale {scale:.3g})")
    pool = p["pooling"]
    kind = config.get("pooling")
    out = pool["output"]
    if kind == "attention":
        err = pool.get("attention_error")
        c.check("probe.pooling_formula", number(err) and err <= FP32_TOL * max(1.0, pool["scale"]),
                f"pooling: the built module does not compute attention pooling on the probe input "
                f"(error {err!r} against wᵀtanh(Wh) softmax weights over real frames)")
        c.check("probe.pooling_not_mean", pool["distance_from_mean"] > 1e-3,
                f"pooling: attention pooling returns the masked mean on the probe input "
                f"(distance {pool['distance_from_mean']:.2g}): its weights are not used")
    else:
        want_p = ref.pooling_reference(kind, len(out[0]) if out and out[0] else 0) if kind else None
        if want_p is None:
            c.fail(f"pooling: no reference for requested pooling {kind!r}")
        else:
            err = max((abs(a - b) for ra, rb in zip(out, want_p) for a, b in zip(ra, rb)), default=math.inf)
            c.check("probe.pooling_formula", err <= FP32_TOL * max(1.0, pool["scale"]),
                    f"pooling: the built module's output on the probe input differs from {kind} "
                    f"pooling over real frames by {err:.3g}")
    pad = p["padding"]
    c.check("probe.padding_invariant",
            pad["finite"] and pad["max_change"] <= tol * max(1.0, pad["scale"]),
            f"padding: changing only padded frames changed the classifier's output by "
            f"{pad['max_change']:.3g} (finite: {pad['finite']}); padding must not enter the model")


def _outputs(expect, effective) -> int:
    """Logits per clip the task needs: 1 for binary, K for multiclass (the daemon's own count)."""
    task = expect.get("task") or {}
    return int(task.get("outputs") or effective.get("head_outputs") or 1)


def _loss_desc(config) -> str:
    kind = config.get("loss")
    if kind == "focal":
        return f"focal(γ={config.get('focal_gamma')}, α={config.get('focal_alpha')})"
    if kind == "label_smoothing":
        return f"label_smoothing(ε={config.get('label_smoothing')})"
    return str(kind)


# --- modes and dropout ---------------------------------------------------------------------------

def _modes(c, config, effective, ev, metrics, expect, tol, _):
    for phase, want in (("train", "train"), ("eval", "eval")):
        m = ev["modes"][phase]
        c.check(f"mode.{phase}", m["calls"] > 0 and m["wrong_mode"] == 0 and m["modules_wrong"] == 0,
                f"mode: {m['wrong_mode']} of {m['calls']} {phase} forwards ran with the model not in "
                f"{want} mode ({m['modules_wrong']} submodules in the wrong mode at phase starts)")
    det = ev.get("determinism")
    # fp32 on CPU is bit-identical; under bf16 autocast allow kernel non-determinism well below
    # what dropout or noise produce (their differences are of order 1e-2 and more)
    c.check("eval.deterministic", number(det) and det <= (1e-3 if tol == BF16_TOL else 1e-5),
            f"eval: evaluating the same rows twice gave outputs differing by {det!r}: evaluation is "
            f"stochastic (dropout or noise active)")
    res = ev["data"]["eval_input_residual"]
    c.check("eval.inputs_are_stored_features", number(res) and res <= 1e-6,
            f"eval: the model's evaluation inputs differ from the split's features by {res!r} "
            f"(noise or another transform applied at evaluation)")


def _dropout(c, config, effective, ev, metrics, expect, tol, _):
    want = float(config.get("dropout", 0.0))
    drops = ev["dropout"]
    bad_p, bad_rate, dead, active = [], [], [], []
    for name, d in drops.items():
        p = d["p"] if d["fixed"] else want
        if not d["fixed"] and not close(d["p"], want, rel=1e-6, abs_=1e-9):
            bad_p.append(f"{name or 'model'} p={d['p']:g}")
        rate, n = d.get("observed_rate"), d.get("elements") or 0
        if rate is not None and n > 0:
            sigma = math.sqrt(max(p * (1 - p), 1e-12) / n)
            if abs(rate - p) > 5 * sigma + 0.01:
                bad_rate.append(f"{name or 'model'} zeroed {rate:.3f} (expected {p:g})")
        if d["train_calls"] == 0 and p > 0:
            dead.append(name or "model")
        if d["eval_active"]:
            active.append(f"{name or 'model'} ({d['eval_active']} calls)")
    c.check("dropout.rate_built", not bad_p,
            f"dropout: requested {want:g}, built {', '.join(bad_p[:4])}")
    c.check("dropout.rate_observed", not bad_rate,
            f"dropout: realised rates in training differ from the requested: {', '.join(bad_rate[:4])}")
    c.check("dropout.ran", not dead, f"dropout: modules never ran in training: {', '.join(dead[:4])}")
    c.check("dropout.off_at_eval", not active,
            f"dropout: active during evaluation: {', '.join(active[:4])}")


# --- the data path -----------------------------------------------------------------------------

def _data(c, config, effective, ev, metrics, expect, tol, _):
    d = ev["data"]
    history = metrics.get("history") or []
    epochs_run = len(history)
    n = int(expect["split_sizes"]["train"]) if expect.get("split_sizes") else effective["split_sizes"]["train"]
    pos = int(expect["split_positives"]["train"]) if expect.get("split_positives") else \
        effective["split_positives"]["train"]
    bs = int(config["batch_size"])
    per_epoch, _total = ref.planned_steps(n, bs, int(config["epochs"]))
    want_sizes: dict[str, int] = {}
    if epochs_run:
        rem = n - bs * (per_epoch - 1)
        want_sizes[str(bs)] = (per_epoch - 1) * epochs_run
        want_sizes[str(rem)] = want_sizes.get(str(rem), 0) + epochs_run
        want_sizes = {k: v for k, v in want_sizes.items() if v}
    c.check("data.batch_sizes", d["batch_sizes"] == want_sizes,
            f"batch_size: realised batch sizes {d['batch_sizes']} (size: count); batch_size {bs} over "
            f"{n} training rows for {epochs_run} epochs gives {want_sizes}")
    c.check("data.rows_per_epoch", d["rows_per_epoch"] == [n] * epochs_run,
            f"data: rows drawn per epoch {d['rows_per_epoch'][:6]}; the training split has {n}")
    ratio = float(config.get("oversample_ratio", 1.0))
    drawn = d["rows_drawn"]
    counts = ((expect.get("task") or {}).get("class_counts") or {}).get("train")
    if drawn and _outputs(expect, effective) > 1 and counts:
        _class_sampling(c, d["classes_drawn"], counts, ratio, epochs_run)
    elif drawn:
        share = d["positives_drawn"] / drawn
        exp = ref.expected_positive_fraction(pos, n, ratio)
        if ratio == 1.0:
            ok = d["positives_drawn"] == pos * epochs_run
        else:
            ok = abs(share - exp) <= 5 * math.sqrt(exp * (1 - exp) / drawn) + 0.01
        c.check("data.oversampling", ok,
                f"oversample_ratio: positives were {share:.3f} of the drawn training rows; ratio "
                f"{ratio:g} over a positive rate of {pos / max(n, 1):.3f} gives {exp:.3f}")
    alpha = float(config.get("mixup_alpha", 0.0))
    mixed, batches = d["mixed_batches"], d.get("sampled_batches", d["batches"])
    if alpha > 0:
        # half the batches a Beta(α, α) draw shows as mixed (a batch of one class shows no mix),
        # less a binomial margin; a small α shows few, and one so small that it shows none is
        # indistinguishable from no mixup: nothing to check then
        p = ref.mixed_batch_share(alpha)
        bar = 0.5 * p * batches - 3 * math.sqrt(batches * p * (1 - p))
        if batches == 0 or bar > 0:
            c.check("data.mixup", batches > 0 and mixed >= bar,
                    f"mixup_alpha: {alpha:g} requested but only {mixed} of {batches} sampled batches had "
                    f"mixed targets (Beta({alpha:g}, {alpha:g}) shows a mix in {p:.0%} of batches)")
    else:
        c.check("data.mixup", mixed == 0,
                f"mixup_alpha: 0 requested but {mixed} of {batches} sampled batches had soft (mixed) targets")
    noise = float(config.get("feature_noise", 0.0))
    seen = d["noise_std"]
    if alpha == 0:
        ok = seen is not None and (abs(seen - noise) <= 0.1 * noise + 0.005 if noise > 0 else seen <= 1e-6)
        c.check("data.noise", ok,
                f"feature_noise: {noise:g} requested; the training inputs differed from the drawn "
                f"features by a std of {seen!r}")
    seq = int(config["seq_len"])
    c.check("sequence.lengths", d["train_seq_len"] == [seq] and d["eval_seq_len"] == [seq],
            f"seq_len: the model saw {d['train_seq_len']} frames in training and {d['eval_seq_len']} "
            f"in evaluation; requested {seq}")
    stored = expect.get("stored_frames") or effective.get("stored_frames")
    windows = expected_windows(expect, effective, seq)   # row 0's centre window, from its length
    frames = d["frames"]
    bad = {s: f for s, f in frames.items() if windows is None or f != windows.get(s)}
    c.check("sequence.frames", windows is not None and set(frames) >= {"train", "val", "test"} and not bad,
            f"sequence: stored frames used per split {bad or frames} differ from the centre windows "
            f"{windows} of row 0's real frames ({stored} stored frames per row)")
    check_length_policy(c, config, effective, expect)
    want_labels = expect.get("labels_hashes")
    if want_labels:
        got = effective.get("labels_hashes") or {}
        wrong = [s for s in want_labels if got.get(s) != want_labels[s]]
        c.check("data.labels", not wrong,
                f"labels: the worker's (clip, label) pairs for {', '.join(wrong)} differ from "
                f"features/clips.csv (hash {[got.get(s) for s in wrong]} != {[want_labels[s] for s in wrong]})")
    want_rows = expect.get("rows") or {}
    feats = effective.get("features") or []
    requested = config["backbone"] if isinstance(config.get("backbone"), list) else [config.get("backbone")]
    loaded = [f.get("backbone") for f in feats]
    c.check("data.backbones_loaded", sorted(loaded) == sorted(requested),
            f"backbone: feature stores loaded {loaded}; requested {requested}")
    if want_rows:
        wrong = []
        for f in feats:
            for split, rows in (f.get("rows") or {}).items():
                for cid, sha in rows:
                    if want_rows.get(f["backbone"], {}).get(cid) != sha:
                        wrong.append(f"{f['backbone']}/{split}/{cid}")
        c.check("data.feature_rows", bool(feats) and not wrong,
                f"features: rows read do not match features/<backbone>/features.npy for "
                f"{', '.join(wrong[:4])} (another store, or rows misaligned with clip ids)")
    bad_norm = [f"{f['backbone']} mean {f['normalisation']['train_mean_abs_max']:.2g} "
                f"std-1 {f['normalisation']['train_std_dev_max']:.2g}"
                for f in feats if f["normalisation"]["train_mean_abs_max"] > 1e-3
                or f["normalisation"]["train_std_dev_max"] > 1e-3]
    c.check("data.normalisation", bool(feats) and not bad_norm,
            f"normalisation: standardised training features are not mean 0 / std 1 "
            f"({'; '.join(bad_norm)}): the statistics came from other rows than the training split")


# --- optimisation ------------------------------------------------------------------------------

def _optimisation(c, config, effective, ev, metrics, expect, tol, _):
    o = ev["optimisation"]
    n = int(expect["split_sizes"]["train"]) if expect.get("split_sizes") else effective["split_sizes"]["train"]
    bs = int(config["batch_size"])
    _per, total = ref.planned_steps(n, bs, int(config["epochs"]))
    base = float(config["learning_rate"])
    sched = config["scheduler"]
    worst = None
    for step, lrs in o["lr"]:
        want = ref.lr_at(sched, base, step, total)
        if want is None:
            worst = (step, lrs, None)
            break
        for lr in lrs:
            if abs(lr - want) > 1e-5 * base + 1e-12:
                worst = (step, lrs, want)
                break
        if worst:
            break
    c.check("optimiser.lr_trajectory", bool(o["lr"]) and worst is None,
            f"scheduler: applied learning rate {worst[1] if worst else None} at step "
            f"{worst[0] if worst else None}; {sched} from {base:g} over {total} steps gives "
            f"{worst[2] if worst else None}" if worst else
            "scheduler: no learning rate was recorded as applied")
    batches = ev["data"]["batches"]
    c.check("optimiser.steps", o["steps"] == batches and batches > 0,
            f"optimiser: {o['steps']} steps for {batches} training batches")
    cls = o["optimiser_class"]
    decoupled = any(g.get("decoupled") for g in o["groups"]) or cls == "AdamW"
    c.check("optimiser.class", cls == "AdamW" and decoupled,
            f"optimiser: ran {o['optimiser_module']}.{cls}; the worker's contract is AdamW "
            f"(decoupled weight decay)")
    wd = float(config["weight_decay"])
    groups = o["groups"]
    mp = o["model_parameters"]
    covered = sum(g["params"] for g in groups) == mp["count"]
    matrices_decayed = sum(g["matrices"] for g in groups if close(g["weight_decay"], wd)) == mp["matrices"]
    vectors_free = all(g["vectors"] == 0 or g["weight_decay"] == 0.0 for g in groups)
    c.check("optimiser.groups", covered and matrices_decayed and vectors_free and mp["matrices"] > 0,
            f"weight_decay: parameter groups {[(g['name'], g['weight_decay'], g['matrices'], g['vectors']) for g in groups]} "
            f"(name, decay, matrices, vectors) must hold all {mp['count']} parameters, the "
            f"{mp['matrices']} matrices at {wd:g} and the vectors at 0")
    c.check("optimiser.base_lr", all(close(g["initial_lr"], base) for g in groups),
            f"learning_rate: parameter groups start at {[g['initial_lr'] for g in groups]}; requested {base:g}")
    c.check("gradients.every_parameter", not o["parameters_without_gradient"],
            f"model: parameters never received a gradient (built but not used in forward): "
            f"{', '.join(o['parameters_without_gradient'][:5])}")
    clip = float(config["grad_clip"])
    before, after, gap = o["grad_norm_max_before_clip"], o["grad_norm_max_after_clip"], o["clip_gap_max"]
    if clip > 0:
        ok = after <= clip * (1 + 1e-3) + 1e-6 and (before <= clip * (1 + 1e-3) or after >= clip * (1 - 1e-3))
        c.check("optimiser.grad_clip", ok,
                f"grad_clip: {clip:g} requested; gradient norms reached {before:.4g} before and "
                f"{after:.4g} after clipping")
    else:
        c.check("optimiser.grad_clip", gap <= 1e-6 * max(1.0, before),
                f"grad_clip: 0 (off) requested, but clipping reduced a gradient norm by {gap:.4g}")


def _class_sampling(c, drawn: list[int], counts: list[int], ratio: float, epochs_run: int) -> None:
    """Per-class oversampling of a multi-class task: drawn class shares against
    reference.expected_class_fractions (exact counts per epoch when the ratio is 1)."""
    total = sum(drawn)
    if ratio == 1.0:
        ok = list(drawn) == [n * epochs_run for n in counts]
        worst = ""
    else:
        want = ref.expected_class_fractions(counts, ratio)
        gaps = [(abs(d / total - w) - (5 * math.sqrt(w * (1 - w) / total) + 0.01), k, d / total, w)
                for k, (d, w) in enumerate(zip(drawn, want))]
        ok = len(drawn) == len(counts) and all(g[0] <= 0 for g in gaps)
        g = max(gaps)
        worst = f"; class {g[1]}: {g[2]:.3f} drawn, {g[3]:.3f} expected"
    c.check("data.oversampling", ok,
            f"oversample_ratio: drawn rows per class {list(drawn)} over {epochs_run} epochs; ratio "
            f"{ratio:g} over training classes {list(counts)} gives other shares{worst}")


def _seeds_epochs(c, config, effective, ev, metrics, expect, tol, spec):
    seeds = ev["seeds"]
    seed = int(config["seed"])
    c.check("seed.set", seeds["sampler_generator_seed"] == seed and seeds["torch_initial_seed"] == seed,
            f"seed: requested {seed}; torch was seeded with {seeds['torch_initial_seed']} and the "
            f"sampler's generator with {seeds['sampler_generator_seed']}")
    history = metrics.get("history") or []
    values = [h.get(spec.history_key) for h in history]
    want = ref.expected_epochs(values, int(config["epochs"]), int(config["patience"]), spec.direction)
    pruned = metrics.get("pruned") if isinstance(metrics.get("pruned"), dict) else None
    if pruned is not None and isinstance(pruned.get("stopped_after_epoch"), int) \
            and 1 <= pruned["stopped_after_epoch"] <= want:
        # stopped at the pruner's request (docs/pruning.md; orze.daemon.outcome checks it was asked),
        # at an epoch boundary before the schedule or early stopping would have ended it
        want = pruned["stopped_after_epoch"]
    c.check("epochs.early_stopping", len(history) == want and metrics.get("epochs_run") == len(history),
            f"epochs: ran {len(history)} epochs (epochs_run {metrics.get('epochs_run')}); with epochs "
            f"{config['epochs']} and patience {config['patience']} this validation history stops at {want}")
