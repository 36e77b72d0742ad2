"""Train and evaluate one experiment from its run directory.

Reads runs/exp/<id>/config.yaml (a canonical configuration) and the task (type, metric) of
configs/orze.yaml, trains with early stopping on the task's validation metric (orze.metrics: its
direction too), and writes metrics.json, effective_config.json and predictions.npz atomically
(and weights.pt with worker.keep_weights: best). The test split is evaluated once, on the
checkpoint chosen by validation, and is never read before that.

Every configured knob is applied by exactly one piece of code below, and the effective value is
read back from the object that applies it (loss, pooling, optimiser, scheduler, sampler, …).
"""

from __future__ import annotations

import io
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml

from orze.config import ConfigError, load_project
from orze.features.store import FeatureStoreError
from orze.layout import RUN_CONFIG, RUN_EFFECTIVE, RUN_LOG, RUN_METRICS, RUN_PREDICTIONS, RUN_WEIGHTS, Layout
from orze.space import check_idea, load_space
from orze.store.atomic import atomic_write_bytes, atomic_write_json
from orze.task import TaskError, classes_from_labels
from orze.vocab import KeepWeights, TaskType, WorkerMode
from orze.worker.cache import FeatureCache
from orze.worker.data import SEQUENCE_MODE, ExperimentData, labels_hash, load_experiment_data, sequence_note
from orze.worker.evaluate import determinism_probe, save_scored, score_split
from orze.worker.evidence import Recorder
from orze.worker.knobs import SCHEDULERS, Augment, EarlyStopper, EpochSampler, build_optimiser, build_scheduler  # noqa: F401
from orze.worker.losses import build_loss
from orze.worker.memory import peak_rss_mb, reset_peak_rss
from orze.worker.model import build_model, describe_model
from orze.worker.probes import loss_probe, padding_probe, pooling_probe
from orze.worker.progress import ProgressReporter

_SCHEDULER_NAMES = {cls: name for name, cls in SCHEDULERS.items()}


class InvalidConfig(ValueError):
    pass


class NonFiniteLoss(FloatingPointError):
    pass


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# --- the experiment ---------------------------------------------------------------------------

def resolve_device(requested: str | None = None) -> torch.device:
    req = requested or os.environ.get("ORZE_DEVICE", "auto")
    if req == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(req)


def read_run_config(run_dir: Path, layout: Layout) -> dict[str, Any]:
    path = run_dir / RUN_CONFIG
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise InvalidConfig(f"{path}: unreadable: {e}") from None
    check = check_idea(load_space(layout.space_config), raw)
    if not check.ok:
        raise InvalidConfig(f"{path}: " + "; ".join(check.errors))
    return check.config


class Log:
    def __init__(self, path: Path):
        self.f = open(path, "a", buffering=1, encoding="utf-8")

    def __call__(self, msg: str) -> None:
        self.f.write(f"{time.strftime('%H:%M:%S')} {msg}\n")
        self.f.flush()


def run_experiment(run_dir: Path, layout: Layout, device: str | None = None,
                   claimed_at: float | None = None, cache: FeatureCache | None = None,
                   worker: dict[str, Any] | None = None,
                   notify: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train and evaluate the run in `run_dir`. `claimed_at` is when the daemon claimed it (the
    start of its overhead clock); `cache` is a warm worker's feature cache; `worker` describes
    the process (mode, pid, jobs run) for the timings; `notify(epoch)` is called after each
    epoch's progress line (a warm worker wakes its daemon with it, orze.worker.progress)."""
    t_start = time.time()
    if claimed_at is None:
        claimed_at = float(os.environ.get("ORZE_CLAIMED_AT", t_start))
    run_dir = Path(run_dir)
    log = Log(run_dir / RUN_LOG)
    config = read_run_config(run_dir, layout)
    dev = resolve_device(device)
    threads = int(os.environ.get("ORZE_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    seed = int(config["seed"])
    set_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    reset_peak_rss()

    project = load_project(layout)
    task, spec = project.task, project.task.spec
    backbones = config["backbone"] if isinstance(config["backbone"], list) else [config["backbone"]]
    t_data = time.time()
    data: ExperimentData = load_experiment_data(layout, backbones, config["seq_len"], dev, cache)
    data_s = time.time() - t_data
    classes = classes_from_labels({s: data.splits[s].y.long().tolist() for s in data.splits},
                                  task.type, layout.clips_csv)
    multiclass = task.type == TaskType.MULTICLASS
    model = build_model(config, data.dims, classes.priors(), classes.outputs).to(dev)
    loss_fn = build_loss(config)
    train = data.splits["train"]
    # a binary task trains on P(1) per row; a multi-class one on one-hot rows (mixup blends them)
    targets = torch.nn.functional.one_hot(train.y.long(), classes.count).float() if multiclass else train.y
    sampler = EpochSampler(train.y.shape[0], train.y, config["batch_size"],
                           config["oversample_ratio"], gen, classes.count if multiclass else 0)
    steps_per_epoch = math.ceil(train.y.shape[0] / config["batch_size"])
    optimiser = build_optimiser(model, config)
    scheduler = build_scheduler(optimiser, config["scheduler"], steps_per_epoch * config["epochs"])
    augment = Augment(config["mixup_alpha"], config["feature_noise"], gen)
    use_bf16 = dev.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_bf16 else \
        (lambda: torch.autocast("cpu", enabled=False))
    t_probe = time.time()
    probes = {"loss": loss_probe(loss_fn, classes.outputs),
              "pooling": pooling_probe(model.pooling, model.head.in_features, dev),
              "padding": padding_probe(model, data.dims, int(train.mask.shape[1]), dev, autocast,
                                      train.mask.sum(dim=1).cpu())}
    rec = Recorder(model, dev, data.unfitted, classes.count)
    verify_s = time.time() - t_probe
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    log(f"device={dev} threads={torch.get_num_threads()} params={sum(p.numel() for p in model.parameters())} "
        f"train={train.y.shape[0]} val={data.splits['val'].y.shape[0]} task={task.type} "
        f"classes={classes.count} metric={spec.history_key} ({spec.direction})")
    log(sequence_note(data.info["sequence_lengths"]))

    history, best_state = [], None
    t_last_epoch = time.time()
    stopper = EarlyStopper(config["patience"], spec.sign)
    reporter = ProgressReporter(run_dir, notify)   # per-epoch progress out, the pruner's verdicts in
    first_step_at = None
    max_batch = 0
    n_epochs, clip = config["epochs"], config["grad_clip"]
    for epoch in range(n_epochs):
        model.train()
        rec.begin_epoch(train)
        t_epoch, total, count = time.time(), 0.0, 0
        for idx in sampler.batches():
            idx = idx.to(dev)
            x_drawn, y_drawn = [x[idx] for x in train.x], train.y[idx]
            xs, mask, y = augment(x_drawn, train.mask[idx], targets[idx])
            rec.batch(idx, y_drawn, y, x_drawn[0], xs[0], mask, augment.mixup_alpha > 0)
            max_batch = max(max_batch, int(idx.shape[0]))
            with rec.in_phase("train"), autocast():
                logits = model(xs, mask)
            loss = loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"non-finite training loss {loss.item()} at epoch {epoch + 1}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            rec.gradients()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            rec.clipped()
            rec.stepping(optimiser)
            optimiser.step()
            scheduler.step()
            if first_step_at is None:
                first_step_at = time.time()
            total += float(loss.detach()) * idx.shape[0]
            count += int(idx.shape[0])
        rec.end_epoch()
        val = score_split(model, data.splits["val"], autocast, task, classes.count, rec, "val")
        history.append({"epoch": epoch + 1, "train_loss": total / max(count, 1),
                        **{f"val_{k}": v for k, v in val.values.items()},
                        "lr": scheduler.get_last_lr()[0], "seconds": time.time() - t_epoch})
        log(f"epoch {epoch + 1}/{n_epochs} loss={total / max(count, 1):.4f} "
            f"{spec.history_key}={val.values[spec.name]:.4f} ({time.time() - t_epoch:.2f}s)")
        t_last_epoch = time.time()
        improved, stop = stopper.update(epoch + 1, val.values[spec.name])
        if improved or best_state is None:
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if stop:
            log(f"early stop: no better {spec.history_key} for {stopper.stale} epochs")
            break
        if reporter.epoch(history[-1], last=epoch + 1 == n_epochs):
            log(f"pruned: stopped after epoch {epoch + 1} at the daemon's request")
            break
    if reporter.late:
        log(f"the daemon's verdict came later than pruning.await_verdict_s at epochs "
            f"{', '.join(map(str, reporter.late))} (a stop requested then lands one epoch later)")

    model.load_state_dict(best_state)
    val_split, test_split = data.splits["val"], data.splits["test"]
    val = score_split(model, val_split, autocast, task, classes.count, rec, "val")
    # The test split is read exactly once, after selection, and never feeds back into it.
    test = score_split(model, test_split, autocast, task, classes.count, rec, "test")
    rec_s, t_probe = rec.seconds, time.time()
    rec.determinism = determinism_probe(model, val_split, autocast, rec)
    evidence = {"probes": probes, **rec.summary(optimiser, gen)}
    rec.close()
    # verification's cost in the worker: probes, the recorder's hooks and counters, the
    # determinism probe, and the data-path evidence (row hashes are paid at load time)
    verify_s += time.time() - t_probe + rec_s + data.evidence_s
    if dev.type == "cuda":
        # reserved, not allocated: what this process holds on the GPU (the packing budget)
        peak_mb = torch.cuda.max_memory_reserved(dev) / 2**20
    else:
        peak_mb = peak_rss_mb()
    finished_train_at = time.time()
    first = first_step_at or finished_train_at
    train_s = sum(h["seconds"] for h in history)
    metrics = {
        "metric_name": spec.history_key, "metric": val.values[spec.name],
        "test_metric": test.values[spec.name],
        **{f"val_{k}": v for k, v in val.values.items()}, **{f"test_{k}": v for k, v in test.values.items()},
        "task": {"type": str(task.type), "classes": classes.count, "metric": spec.name,
                 "direction": spec.direction},
        "selection": {"split": "val", "metric": spec.history_key, "best_epoch": stopper.best_epoch},
        # the rows each reported metric was computed on, as labels hashes (docs/verification.md)
        "provenance": {"metric": {"split": "val", "labels_sha": labels_hash(val_split.ids, val_split.y.cpu().tolist())},
                       "test_metric": {"split": "test",
                                       "labels_sha": labels_hash(test_split.ids, test_split.y.cpu().tolist())}},
        "epochs_run": len(history), "history": history, "seed": seed, **reporter.summary(),
        "seconds": time.time() - t_start,
        "startup_s": first - claimed_at,
        "seconds_per_epoch": train_s / max(len(history), 1),
        "peak_memory_mb": peak_mb, "device": str(dev), "threads": torch.get_num_threads(),
        "timings": {
            "claimed_at": claimed_at, "worker_started_at": t_start, "first_step_at": first,
            "claim_to_first_step_s": first - claimed_at, "process_start_s": t_start - claimed_at,
            "data_s": data_s, "train_s": train_s, "verdict_wait_s": round(reporter.waited_s, 3),
            "verify_s": verify_s, "final_eval_s": finished_train_at - t_last_epoch,
            "seconds_per_epoch": train_s / max(len(history), 1),
            "feature_cache": ("hit" if data.cache_hits and all(data.cache_hits) else
                              "miss" if cache is not None else "none"),
            **{f"worker_{k}": v for k, v in (worker or {"mode": str(WorkerMode.COLD)}).items()},
        },
    }
    effective = effective_config(model, loss_fn, optimiser, scheduler, sampler, augment, stopper,
                                 data, max_batch, dev, n_epochs, clip, evidence)
    save_scored(run_dir / RUN_PREDICTIONS, {"val": val, "test": test})
    if project.worker.keep_weights == KeepWeights.BEST:
        save_weights(run_dir / RUN_WEIGHTS, best_state, config, data, classes, task)
    atomic_write_json(run_dir / RUN_EFFECTIVE, effective)
    atomic_write_json(run_dir / RUN_METRICS, metrics)
    log(f"done {spec.history_key}={val.values[spec.name]:.4f} {spec.test_key}={test.values[spec.name]:.4f} "
        f"best_epoch={stopper.best_epoch}")
    return metrics


def save_weights(path: Path, state: dict[str, torch.Tensor], config: dict[str, Any], data: ExperimentData,
                 classes, task) -> None:
    """weights.pt: the selected epoch's weights with what rebuilding and feeding the model needs
    (the configuration, input dims, classes, training-split standardisation per backbone); read
    by `orze predict` (orze.cli.predict)."""
    buf = io.BytesIO()
    torch.save({"state_dict": {k: v.cpu() for k, v in state.items()}, "config": config,
                "backbones": list(data.backbones), "dims": list(data.dims), "outputs": classes.outputs,
                "classes": classes.count, "priors": classes.priors(), "task_type": str(task.type),
                "standardisation": {b: (m.cpu(), sd.cpu()) for b, (m, sd) in data.standardisation.items()}},
               buf)
    atomic_write_bytes(path, buf.getvalue())


def effective_config(model, loss_fn, optimiser, scheduler, sampler: EpochSampler, augment: Augment,
                     stopper: EarlyStopper, data: ExperimentData, max_batch: int,
                     dev, epochs: int, grad_clip: float, evidence: dict[str, Any]) -> dict[str, Any]:
    """What was actually built and run, read back from the objects and the loop's own bounds
    (DESIGN.md §5), with the behavioural evidence of the run (`evidence`, docs/verification.md)."""
    groups = {g["name"]: g for g in optimiser.param_groups}
    train = data.splits["train"]
    eff: dict[str, Any] = {
        "backbone": data.backbones[0] if len(data.backbones) == 1 else sorted(data.backbones),
        **describe_model(model),
        **loss_fn.describe(),
        "batch_size": sampler.batch_size,
        "max_batch_seen": max_batch,
        "scheduler": _SCHEDULER_NAMES[type(scheduler)],
        "seq_len": int(train.mask.shape[1]),
        "epochs": epochs,
        "patience": stopper.patience,
        "learning_rate": groups["decay"]["initial_lr"],
        "weight_decay": groups["decay"]["weight_decay"],
        "grad_clip": grad_clip,
        "oversample_ratio": sampler.oversample_ratio,
        "mixup_alpha": augment.mixup_alpha,
        "feature_noise": augment.feature_noise,
        "seed": int(sampler.generator.initial_seed()),
        "classes": sampler.classes or 2,
        "optimiser": {"class": type(optimiser).__name__,
                      "groups": {n: {"weight_decay": g["weight_decay"], "params": len(g["params"])}
                                 for n, g in groups.items()}},
        "input_dims": data.dims,
        "sequence": {"train": {"mode": SEQUENCE_MODE, "seq_len": int(train.mask.shape[1])},
                     "eval": {split: {"mode": SEQUENCE_MODE, "seq_len": int(data.splits[split].mask.shape[1])}
                              for split in ("val", "test")}},
        "eval_mode": {"dropout_off": evidence["modes"]["eval"]["wrong_mode"] == 0 and
                      not any(d["eval_active"] for d in evidence["dropout"].values()),
                      "autocast": "bf16" if dev.type == "cuda" else "off"},
        "device": str(dev),
        **data.info,
        "evidence": evidence,
    }
    return eff


def classify_exception(exc: BaseException) -> str:
    if isinstance(exc, (InvalidConfig, ConfigError, TaskError)):
        return "invalid_config"
    if isinstance(exc, FeatureStoreError):
        return "missing_features"
    if isinstance(exc, NonFiniteLoss):
        return "nan_loss"
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return "oom"
    text = str(exc).lower()
    if isinstance(exc, RuntimeError) and ("out of memory" in text):
        return "oom"
    if isinstance(exc, RuntimeError) and ("shape" in text or "size mismatch" in text or "mat1 and mat2" in text):
        return "shape_mismatch"
    return "crash"
