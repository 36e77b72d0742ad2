"""Integrity checks of features/: every store, clips.csv and the split.

Each check is a pure function over plain data returning `Issue`s (errors make `orze features check`
fail; warnings are printed). `check_features(layout)` reads the files and runs them all.

Store (per backbone): meta.json present and readable, a 3-D float16 array with one row per id in
clips.txt, meta.json agreeing with the array (backbone, num_clips, frames, dim), unique ids, no
NaN/inf, no all-zero clip (warning), no unfinished extraction left behind (warning).
Store vs clips.csv: every clip of clips.csv present in every backbone; ids unknown to clips.csv
(warning); fused backbones need one frame count (warning when they differ).
Lengths (orze.features.lengths): a ragged store's lengths.npy readable and valid (1..frames per
row); warnings when the space's default or largest `seq_len` drops real frames, when a store is
mostly padding, and when a store without lengths ends its clips in all-zero frames (hand padding).
Split: clips.csv readable, each clip id once (a clip in two splits breaks disjointness), train and
val present (test: warning), the labels fitting `task.type` by the daemon's own rule
(orze.task.classes_from_labels). Binary: both labels in every split (AP is undefined otherwise)
and positive rates within a factor `max_rate_ratio` of each other (warning). Multiclass: a class
absent from a split (warning: its per-class terms of macro metrics are undefined there) and class
shares of val/test within `max_rate_ratio` of train's (warning).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import json

from orze.features.lengths import length_issues, length_stats, seq_len_effect, seq_len_values, trailing_zero_frames
from orze.features.store import PARTIAL_DIR, SPLITS, Clip, FeatureStoreError, check_lengths, read_clips
from orze.layout import Layout, STORE_CLIPS, STORE_FEATURES, STORE_LENGTHS, STORE_META
from orze.task import TaskError, classes_from_labels
from orze.vocab import TaskType

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    level: Level
    code: str
    path: str
    message: str


@dataclass
class SplitSummary:
    split: str
    clips: int
    class_counts: list[int]           # clips per class index 0..K-1

    @property
    def positives(self) -> int:
        """Clips of class 1 (a binary task's positives)."""
        return self.class_counts[1] if len(self.class_counts) > 1 else 0

    @property
    def rate(self) -> float:
        return self.positives / self.clips if self.clips else 0.0


@dataclass
class CheckReport:
    issues: list[Issue] = field(default_factory=list)
    splits: list[SplitSummary] = field(default_factory=list)
    stores: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "issues": [asdict(i) for i in self.issues],
                "splits": [asdict(s) | {"positives": s.positives, "rate": s.rate} for s in self.splits],
                "stores": self.stores}


def _err(code: str, path: Path | str, msg: str) -> Issue:
    return Issue("error", code, str(path), msg)


def _warn(code: str, path: Path | str, msg: str) -> Issue:
    return Issue("warning", code, str(path), msg)


def _first(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


# --- split integrity (pure) --------------------------------------------------------------------

def check_split(clips: list[Clip], path: Path | str = "features/clips.csv", max_rate_ratio: float = 2.0,
                task_type: TaskType | str = TaskType.BINARY) -> tuple[list[Issue], list[SplitSummary]]:
    issues: list[Issue] = []
    by_id: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        by_id[c.clip_id].append(c)
    overlap = sorted(cid for cid, cs in by_id.items() if len({c.split for c in cs}) > 1)
    dup = sorted(cid for cid, cs in by_id.items() if len(cs) > 1 and cid not in overlap)
    if overlap:
        where = "; ".join(f"{cid} in {'+'.join(sorted({c.split for c in by_id[cid]}))}"
                          for cid in overlap[:5])
        issues.append(_err("split-overlap", path,
                           f"{len(overlap)} clip id(s) in more than one split (splits must be "
                           f"disjoint by clip id): {where}"))
    if dup:
        issues.append(_err("duplicate-clip", path,
                           f"{len(dup)} clip id(s) listed more than once: {_first(dup)}"))
    counts = Counter(c.split for c in clips)
    for s in ("train", "val"):
        if not counts[s]:
            issues.append(_err("split-missing", path, f"no '{s}' clips"))
    if not counts["test"]:
        issues.append(_warn("split-missing", path, "no 'test' clips (the test metric stays empty)"))
    labels = {s: [c.label for c in clips if c.split == s] for s in SPLITS if counts[s]}
    try:
        classes = classes_from_labels(labels, task_type, path)
    except TaskError as e:
        issues.append(_err("labels", path, str(e).removeprefix(f"{path}: ")))
        k = max(max((c.label for c in clips), default=1) + 1, 2)
        per_split = {s: [sum(1 for y in ys if y == c) for c in range(k)] for s, ys in labels.items()}
    else:
        per_split = classes.per_split
    summaries = [SplitSummary(s, counts[s], per_split[s]) for s in SPLITS if counts[s]]
    if TaskType(task_type) == TaskType.BINARY:
        issues += _binary_balance(summaries, path, max_rate_ratio)
    else:
        issues += _class_balance(summaries, path, max_rate_ratio)
    return issues, summaries


def _binary_balance(summaries: list[SplitSummary], path, max_rate_ratio: float) -> list[Issue]:
    issues = []
    for sm in summaries:
        if sm.positives in (0, sm.clips):
            only = "positive" if sm.positives else "negative"
            issues.append(_err("single-class", path,
                               f"split '{sm.split}' has only {only} clips ({sm.clips}); average "
                               f"precision needs both labels"))
    rated = [sm for sm in summaries if 0 < sm.positives < sm.clips]
    if len(rated) > 1:
        lo = min(rated, key=lambda s: s.rate)
        hi = max(rated, key=lambda s: s.rate)
        if hi.rate > max_rate_ratio * lo.rate:
            issues.append(_warn("label-balance", path,
                                f"positive rate {hi.rate:.1%} in '{hi.split}' vs {lo.rate:.1%} in "
                                f"'{lo.split}' (more than {max_rate_ratio:g}x apart)"))
    return issues


def _class_balance(summaries: list[SplitSummary], path, max_rate_ratio: float) -> list[Issue]:
    issues = []
    train = next((sm for sm in summaries if sm.split == "train"), None)
    for sm in summaries:
        absent = [c for c, n in enumerate(sm.class_counts) if n == 0]
        if absent:
            issues.append(_warn("class-missing", path,
                                f"split '{sm.split}' has no clip of class(es) {_first([str(c) for c in absent])} "
                                f"(their per-class terms of macro metrics are undefined there)"))
    if train is None or not train.clips:
        return issues
    for sm in summaries:
        if sm is train or not sm.clips:
            continue
        apart = []
        for c, (n_train, n) in enumerate(zip(train.class_counts, sm.class_counts)):
            a, b = n_train / train.clips, n / sm.clips
            if a > 0 and b > 0 and max(a, b) > max_rate_ratio * min(a, b):
                apart.append(f"class {c}: {a:.1%} in 'train' vs {b:.1%}")
        if apart:
            issues.append(_warn("label-balance", path,
                                f"class shares in '{sm.split}' more than {max_rate_ratio:g}x from train's: "
                                + "; ".join(apart[:5]) + (f" (+{len(apart) - 5} more)" if len(apart) > 5 else "")))
    return issues


# --- one store (pure over its parts) -----------------------------------------------------------

def check_array(backbone: str, path: Path | str, ids: list[str], array: np.ndarray,
                meta: dict[str, Any], chunk: int = 256, scan: dict[str, int] | None = None) -> list[Issue]:
    """The array and its ids and meta.json; scans values in chunks (works on a memmap). `scan`
    receives `trailing_zero`, the count of trailing all-zero frames over all clips."""
    issues: list[Issue] = []
    npy = f"{path}/features.npy"
    if array.ndim != 3:
        return [_err("shape", npy, f"expected (N, T, D), got shape {array.shape}")]
    if array.shape[0] != len(ids):
        return [_err("shape", npy, f"{array.shape[0]} rows but clips.txt has {len(ids)} ids")]
    if array.dtype != np.float16:
        issues.append(_err("dtype", npy, f"dtype {array.dtype}; the store format is float16"))
    expect = {"backbone": backbone, "num_clips": array.shape[0], "frames": array.shape[1],
              "dim": array.shape[2]}
    for k, v in expect.items():
        if meta.get(k) != v:
            issues.append(_err("meta", f"{path}/meta.json",
                               f"{k} is {meta.get(k)!r} but the store has {v!r}"))
    counts = Counter(ids)
    dups = sorted(i for i, n in counts.items() if n > 1)
    if dups:
        issues.append(_err("duplicate-id", f"{path}/clips.txt",
                           f"{len(dups)} clip id(s) more than once: {_first(dups)}"))
    bad: list[str] = []
    zero: list[str] = []
    trailing = 0
    for start in range(0, array.shape[0], chunk):
        block = np.asarray(array[start:start + chunk], dtype=np.float32)
        trailing += int(trailing_zero_frames(block).sum())
        finite = np.isfinite(block).all(axis=(1, 2))
        zeros = ~np.any(block != 0, axis=(1, 2))
        bad += [ids[start + i] for i in np.flatnonzero(~finite)]
        zero += [ids[start + i] for i in np.flatnonzero(zeros & finite)]
    if scan is not None:
        scan["trailing_zero"] = trailing
    if bad:
        issues.append(_err("nonfinite", npy, f"{len(bad)} clip(s) with NaN/inf: {_first(bad)}"))
    if zero:
        issues.append(_warn("zero-features", npy,
                            f"{len(zero)} clip(s) whose features are all zero: {_first(zero)}"))
    return issues


def check_coverage(backbone: str, path: Path | str, ids: list[str], clip_ids: list[str],
                   clips_csv: Path | str) -> list[Issue]:
    """Every clip of clips.csv has a row; rows unknown to clips.csv are flagged."""
    have = set(ids)
    listed = set(clip_ids)
    missing = [c for c in dict.fromkeys(clip_ids) if c not in have]
    extra = [c for c in ids if c not in listed]
    issues = []
    if missing:
        issues.append(_err("missing-clips", f"{path}/clips.txt",
                           f"{len(missing)} clip(s) of {clips_csv} have no '{backbone}' features: "
                           f"{_first(missing)}"))
    if extra:
        issues.append(_warn("unknown-clips", f"{path}/clips.txt",
                            f"{len(extra)} clip(s) not in {clips_csv} (unused): {_first(extra)}"))
    return issues


def check_frames(frames: dict[str, int], features_dir: Path | str) -> list[Issue]:
    if len(set(frames.values())) > 1:
        desc = ", ".join(f"{b}: {t}" for b, t in sorted(frames.items()))
        return [_warn("frames-differ", features_dir,
                      f"backbones have different frame counts ({desc}); they cannot be fused")]
    return []


# --- everything (I/O) --------------------------------------------------------------------------

def store_dirs(features: Path) -> list[Path]:
    """Subdirectories of features/ that hold (or were meant to hold) a store."""
    if not features.is_dir():
        return []
    marks = (STORE_META, STORE_FEATURES, STORE_CLIPS, PARTIAL_DIR)
    return sorted(d for d in features.iterdir()
                  if d.is_dir() and any((d / m).exists() for m in marks))


def _task_type(layout: Layout) -> TaskType:
    """The project's task.type (binary when configs/orze.yaml cannot be read: its own error is
    `orze run`'s to give)."""
    from orze.config import ConfigError, load_project
    try:
        return load_project(layout).task.type
    except (ConfigError, OSError):
        return TaskType.BINARY


def check_features(layout: Layout, backbones: list[str] | None = None,
                   max_rate_ratio: float = 2.0) -> CheckReport:
    report = CheckReport()
    clips_csv = layout.clips_csv
    clip_ids: list[str] | None = None
    try:
        clips = read_clips(clips_csv)
    except FeatureStoreError as e:
        report.issues.append(_err("clips-csv", clips_csv, str(e)))
    else:
        if not clips:
            report.issues.append(_err("clips-csv", clips_csv, "no clips"))
        else:
            issues, report.splits = check_split(clips, clips_csv, max_rate_ratio, _task_type(layout))
            report.issues += issues
            clip_ids = [c.clip_id for c in clips]

    if backbones:
        dirs = [layout.backbone_dir(b) for b in backbones]
    else:
        dirs = store_dirs(layout.features)
        if not dirs:
            report.issues.append(_err("no-stores", layout.features,
                                      "no feature stores (orze features extract|import)"))
    frames: dict[str, int] = {}
    seq_lens, seq_default = space_seq_len(layout)
    for d in dirs:
        name = d.name
        if (d / PARTIAL_DIR).exists():
            report.issues.append(_warn("unfinished", d / PARTIAL_DIR,
                                       "an extraction was interrupted; rerun it to finish"))
        if not (d / STORE_META).exists():
            report.issues.append(_err("incomplete", d / STORE_META,
                                      f"no meta.json: the store for '{name}' is missing or was "
                                      f"never completed"))
            continue
        parts = _load_parts(d)
        if isinstance(parts, Issue):
            report.issues.append(parts)
            continue
        ids, array, meta = parts
        scan: dict[str, int] = {}
        report.issues += check_array(name, d, ids, array, meta, scan=scan)
        if clip_ids is not None:
            report.issues += check_coverage(name, d, ids, clip_ids, clips_csv)
        if array.ndim == 3:
            frames[name] = int(array.shape[1])
        report.stores[name] = {"clips": len(ids), "shape": list(array.shape),
                               "model_id": meta.get("model_id"), "source": meta.get("source")}
        if array.ndim == 3 and array.shape[0] == len(ids) and ids:
            report.issues += _lengths(report.stores[name], name, d, array, meta, scan, seq_lens,
                                      seq_default, layout)
    report.issues += check_frames(frames, layout.features)
    return report


def _load_parts(d: Path) -> tuple[list[str], np.ndarray, dict[str, Any]] | Issue:
    """meta.json, clips.txt and features.npy read separately, so each fault gets its own issue."""
    try:
        meta = json.loads((d / STORE_META).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return _err("unreadable", d / STORE_META, f"not a readable JSON object: {e}")
    try:
        ids = (d / STORE_CLIPS).read_text(encoding="utf-8").split()
    except OSError as e:
        return _err("unreadable", d / STORE_CLIPS, f"cannot read the clip ids: {e}")
    try:
        array = np.load(d / STORE_FEATURES, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        return _err("unreadable", d / STORE_FEATURES, f"not a readable .npy array: {e}")
    return ids, array, meta


def space_seq_len(layout: Layout) -> tuple[list[int], int | None]:
    """The seq_len values configs/space.yaml allows and its default ([], None without one)."""
    from orze.space import SpaceError, load_space

    if not layout.space_config.exists():
        return [], None
    try:
        return seq_len_values(load_space(layout.space_config).dimensions)
    except SpaceError:
        return [], None


def _lengths(summary: dict[str, Any], name: str, d: Path, array: np.ndarray, meta: dict[str, Any],
             scan: dict[str, int], seq_lens: list[int], seq_default: int | None,
             layout: Layout) -> list[Issue]:
    """A store's clip lengths (lengths.npy, or all full length) into `summary`, with their issues."""
    n, t = int(array.shape[0]), int(array.shape[1])
    ragged = bool(meta.get("ragged"))
    lengths = np.full(n, t, dtype=np.int64)
    if ragged:
        try:
            lengths = check_lengths(d / STORE_LENGTHS, np.load(d / STORE_LENGTHS, allow_pickle=False), n, t)
        except (OSError, ValueError, FeatureStoreError) as e:
            return [_err("lengths", d / STORE_LENGTHS, f"meta.json says the store is ragged, but: {e}")]
    summary["lengths"] = {**length_stats(lengths, t), "ragged": ragged}
    if seq_default:
        summary["seq_len"] = seq_len_effect(lengths, seq_default)
    return [_warn(code, path, msg) for code, path, msg in
            length_issues(name, str(d), lengths, t, ragged, seq_lens, seq_default,
                          str(layout.space_config), scan.get("trailing_zero", 0))]
