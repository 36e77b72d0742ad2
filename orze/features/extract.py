"""Extract frozen-backbone features from videos into features/<backbone>/ (resumable).

Pipeline per clip: find <clip_id>.<ext> under the videos directory → decode and sample `frames`
instants at `fps` (orze.features.video; video backbones get `tubelet` frames per instant, i.e. the
frames are sampled at tubelet × fps) → preprocess in torch on the device → the frozen backbone in
inference mode, a batch of clips at a time, bf16 autocast on CUDA → one (frames, D) array per clip.

Resumability: every finished clip is written atomically to features/<backbone>/partial/<clip>.npz
next to the settings it was made with (partial/settings.json). A later run with the same settings
skips those clips, and also the clips already in a finished store made with the same settings; the
store is then assembled with `write_store` (meta.json last) and the partial directory removed. A
video that cannot be found or decoded is reported and skipped, never fatal; it is retried next run.
"""

from __future__ import annotations

import io
import shutil
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from orze.features.backbones import Backbone, config_side, needs_exact_side
from orze.features.labels import merge_into_clips_csv
from orze.features.store import PARTIAL_DIR, Clip, FeatureStoreError, open_store, split_grouped
from orze.features.writer import write_store_rows
from orze.features.video import ALIGNS, Sampled, VideoError, find_videos, sample_video
from orze.layout import Layout, STORE_META
from orze.store.atomic import atomic_write_bytes, atomic_write_json, read_json_or_none

SETTINGS_FILE = "settings.json"


class ExtractError(RuntimeError):
    """Extraction cannot start or finish; the message names the file or option at fault."""


@dataclass(frozen=True)
class ExtractSettings:
    fps: float = 5.0
    frames: int = 24
    align: str = "end"
    batch_size: int = 8  # clips per forward pass (frame models see batch_size × frames images)
    image_size: int | None = None  # override the model's input side
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    model_id: str | None = None  # Hub id or local directory instead of the registry's default
    workers: int = 2  # decoding threads
    restart: bool = False  # discard partial results and any finished store made differently

    def validate(self) -> None:
        if self.fps <= 0:
            raise ExtractError(f"--fps must be > 0, got {self.fps}")
        if self.frames < 1:
            raise ExtractError(f"--frames must be ≥ 1, got {self.frames}")
        if self.align not in ALIGNS:
            raise ExtractError(f"--align must be one of {', '.join(ALIGNS)}, got {self.align!r}")
        if self.batch_size < 1 or self.workers < 1:
            raise ExtractError("--batch-size and --workers must be ≥ 1")
        if self.image_size is not None and self.image_size < 8:
            raise ExtractError(f"--image-size must be ≥ 8, got {self.image_size}")


@dataclass
class ExtractReport:
    store: Path
    extracted: int = 0
    reused: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    short: dict[str, int] = field(default_factory=dict)
    total: int = 0
    seconds: float = 0.0
    dim: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ExtractError(f"--device {name}: CUDA is not available here (use --device cpu)")
    return dev


def partial_dir(store_dir: Path) -> Path:
    return Path(store_dir) / PARTIAL_DIR


def clip_file(store_dir: Path, clip_id: str) -> Path:
    # quote() makes any clip id a single safe file name ('/' and other separators escaped)
    return partial_dir(store_dir) / f"{quote(clip_id, safe='')}.npz"


def signature(backbone: Backbone, settings: ExtractSettings, preprocessing: dict[str, Any],
              model_id: str) -> dict:
    """What makes two extractions interchangeable; partial and stored rows are reused only if equal."""
    return {"backbone": backbone.name, "model_id": model_id,
            "fps": float(settings.fps), "frames": int(settings.frames), "align": settings.align,
            "input_frames": backbone.input_frames(settings.frames), "preprocessing": preprocessing}


def extract(layout: Layout, backbone: Backbone, videos: Path, clips: list[Clip],
            settings: ExtractSettings, *, model: torch.nn.Module | None = None,
            console: Console | None = None, progress: bool = True,
            labels_source: Path | str | None = None) -> ExtractReport:
    """Extract the features of `clips` and (re)write the store; see the module docstring."""
    settings.validate()
    started = time.monotonic()
    console = console or Console(stderr=True)
    device = resolve_device(settings.device)
    store_dir = layout.backbone_dir(backbone.name)
    report = ExtractReport(store=store_dir)

    # the config alone decides the preprocessing, so a run with nothing left to do never loads
    # the weights
    config = model.config if model is not None else backbone.load_config(settings.model_id)
    pre = backbone.preprocessing
    fixed = config_side(config) if needs_exact_side(backbone) else None
    if settings.image_size is not None:
        if fixed is not None and fixed != settings.image_size:
            raise ExtractError(f"--image-size {settings.image_size}: {backbone.model_class} "
                               f"'{settings.model_id or backbone.model_id}' only takes {fixed}")
        pre = pre.with_side(settings.image_size)
    elif fixed is not None and fixed != pre.side:
        pre = pre.with_side(fixed)
    sig = signature(backbone, settings, pre.as_meta(), _model_id(backbone, settings, model))

    reuse = _reusable_store(store_dir, sig, settings.restart)
    partial = _prepare_partial(store_dir, sig, settings.restart)
    done = set(reuse.ids if reuse is not None else []) | _partial_ids(store_dir, clips)
    todo = [c for c in clips if c.clip_id not in done]

    found, missing = find_videos(Path(videos), [c.clip_id for c in todo]) if todo else ({}, [])
    for cid in missing:
        report.failed.append((cid, f"no video named {cid}.<mp4|avi|mov|mkv|webm|…> under {videos}"))
    work = [c for c in todo if c.clip_id in found]
    if work:
        model = (model if model is not None else backbone.load(settings.model_id)).to(device)

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task(f"{backbone.name}", total=len(work))
        decoded = _decode_ahead(work, found, settings, backbone, max(1, settings.workers))
        for batch in _batches(decoded, settings.batch_size):
            ok = []
            for clip, sampled, error in batch:
                if error is not None:
                    report.failed.append((clip.clip_id, error))
                else:
                    ok.append((clip, sampled))
            if ok:
                feats = _embed(model, backbone, pre, [s.frames for _, s in ok], device)
                for (clip, sampled), f in zip(ok, feats):
                    if not np.isfinite(f).all():
                        report.failed.append((clip.clip_id, "the backbone produced NaN/inf"))
                        continue
                    _save_partial(store_dir, clip.clip_id, f, sampled.real)
                    report.extracted += 1
            bar.advance(task, len(batch))

    return _assemble(layout, backbone, clips, sig, reuse, report, partial, started,
                     labels_source or layout.clips_csv)


# --- decoding and inference ------------------------------------------------------------------

def _decode_ahead(work: list[Clip], paths: dict[str, Path], settings: ExtractSettings,
                  backbone: Backbone, workers: int) -> Iterator[tuple[Clip, Sampled | None, str | None]]:
    """Decode clips in background threads, in order, a bounded number ahead of the consumer."""
    fps = settings.fps * backbone.tubelet
    count = backbone.input_frames(settings.frames)
    ahead = max(2, 2 * workers, settings.batch_size)

    def one(clip: Clip) -> Sampled:
        return sample_video(paths[clip.clip_id], fps, count, settings.align)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="orze-decode") as pool:
        it = iter(work)
        pending = deque((c, pool.submit(one, c)) for c in islice(it, ahead))
        while pending:
            clip, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(one, nxt)))
            try:
                yield clip, fut.result(), None
            except VideoError as e:
                yield clip, None, str(e)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _embed(model: torch.nn.Module, backbone: Backbone, pre, clips: list[np.ndarray],
           device: torch.device) -> list[np.ndarray]:
    """uint8 (F, H, W, 3) clips (one size per clip, any size across clips) -> (T, D) float32 each."""
    with torch.inference_mode():
        pixels = torch.stack([pre.apply(torch.from_numpy(c).to(device)) for c in clips])
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = backbone.embed(model, pixels)
        else:
            out = backbone.embed(model, pixels)
        out = out.float().cpu().numpy()
    return list(out)


# --- partial results and the finished store ---------------------------------------------------

def _reusable_store(store_dir: Path, sig: dict, restart: bool):
    if not (Path(store_dir) / STORE_META).exists():
        return None
    if restart:
        return None
    store = open_store(store_dir, mmap=True)
    made_with = store.meta.get("extraction")
    if made_with == sig:
        return store
    what = ("was imported, not extracted" if made_with is None
            else f"was extracted with other settings ({_diff(made_with, sig)})")
    raise ExtractError(f"{store_dir}/meta.json: this store {what}; pass --restart to replace it")


def _prepare_partial(store_dir: Path, sig: dict, restart: bool) -> Path:
    pdir = partial_dir(store_dir)
    settings_file = pdir / SETTINGS_FILE
    if pdir.exists() and restart:
        shutil.rmtree(pdir)
    if settings_file.exists():
        old = read_json_or_none(settings_file)
        if old != sig:
            raise ExtractError(
                f"{settings_file}: partial results were made with other settings "
                f"({_diff(old, sig)}); pass --restart to discard them")
    else:
        atomic_write_json(settings_file, sig)
    return pdir


def _partial_ids(store_dir: Path, clips: list[Clip]) -> set[str]:
    return {c.clip_id for c in clips if clip_file(store_dir, c.clip_id).exists()}


def _save_partial(store_dir: Path, clip_id: str, features: np.ndarray, real: int) -> None:
    buf = io.BytesIO()
    np.savez(buf, features=features.astype(np.float16), real=np.int64(real))
    atomic_write_bytes(clip_file(store_dir, clip_id), buf.getvalue())


def _load_partial(store_dir: Path, clip_id: str) -> tuple[np.ndarray, int]:
    path = clip_file(store_dir, clip_id)
    try:
        with np.load(path) as z:
            return z["features"], int(z["real"])
    except (OSError, ValueError, KeyError) as e:
        raise ExtractError(f"{path}: unreadable partial result ({e}); delete it to redo the clip")


def _assemble(layout: Layout, backbone: Backbone, clips: list[Clip], sig: dict, reuse,
              report: ExtractReport, pdir: Path, started: float,
              labels_source: Path | str) -> ExtractReport:
    store_dir = report.store
    # (clip id, loader) in store order; rows are read one at a time while the store is written
    plan: list[tuple[str, Callable[[], np.ndarray]]] = []
    new_clips: list[Clip] = []
    old_short = (reuse.meta.get("short_clips") or {}) if reuse is not None else {}
    reuse_index = {cid: i for i, cid in enumerate(reuse.ids)} if reuse is not None else {}
    wanted = {c.clip_id for c in clips}

    def stored(i: int) -> Callable[[], np.ndarray]:
        return lambda: np.asarray(reuse.array[i])

    def partial_row(cid: str) -> Callable[[], np.ndarray]:
        return lambda: _load_partial(store_dir, cid)[0]

    # extraction only adds: rows of an earlier run for clips outside this label set are kept
    for cid, i in reuse_index.items():
        if cid not in wanted:
            plan.append((cid, stored(i)))
            if cid in old_short:
                report.short[cid] = int(old_short[cid])
    for c in clips:
        if c.clip_id in reuse_index:
            plan.append((c.clip_id, stored(reuse_index[c.clip_id])))
            report.reused += 1
            if c.clip_id in old_short:
                report.short[c.clip_id] = int(old_short[c.clip_id])
        elif clip_file(store_dir, c.clip_id).exists():
            _, real = _load_partial(store_dir, c.clip_id)
            plan.append((c.clip_id, partial_row(c.clip_id)))
            if real < sig["input_frames"]:
                report.short[c.clip_id] = real
        else:
            continue
        new_clips.append(c)
    loaders = dict(plan)  # stored grouped by split: each split is read as one slice
    plan = [(cid, loaders[cid]) for cid in split_grouped(list(loaders), clips)]
    report.total = len(plan)
    if not plan:
        raise ExtractError(f"{store_dir}: no clip could be extracted "
                           f"({len(report.failed)} failed; first: {report.failed[:1]})")
    first = plan[0][1]()
    report.dim = int(first.shape[1])
    meta = {
        **backbone.as_meta(sig["model_id"]),
        "source": "extract", "fps": sig["fps"], "align": sig["align"],
        "input_frames": sig["input_frames"], "preprocessing": sig["preprocessing"],
        "extraction": sig, "short_clips": report.short,
        "skipped": [{"clip_id": cid, "error": err} for cid, err in report.failed],
        "versions": _versions(),
    }
    try:
        write_store_rows(store_dir, backbone.name, [cid for cid, _ in plan],
                         (load() for _, load in plan), int(first.shape[0]), report.dim, meta)
    except FeatureStoreError as e:
        raise ExtractError(f"{e}; partial results in {pdir} may be stale: pass --restart") from None
    merge_into_clips_csv(layout.clips_csv, new_clips, labels_source)
    shutil.rmtree(pdir, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


def _model_id(backbone: Backbone, settings: ExtractSettings, model: torch.nn.Module | None) -> str:
    """What meta.json records as the model: the id loaded, or what a model passed in came from."""
    if settings.model_id or model is None:
        return settings.model_id or backbone.model_id
    return getattr(model.config, "_name_or_path", "") or f"in-memory {type(model).__name__}"


def _diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {old.get(k)!r} now {new.get(k)!r}" for k in keys) or "unknown"


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
