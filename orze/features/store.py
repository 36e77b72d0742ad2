"""The feature store format: one contiguous array per backbone, memory-mapped.

    features/<backbone>/features.npy   (N, T, D) float16, clip rows in the order of clips.txt
    features/<backbone>/clips.txt      N clip ids, one per line
    features/<backbone>/lengths.npy    (N,) int32 real frames per clip, only in a ragged store
    features/<backbone>/meta.json      backbone, model_id, dim, frames, fps, dtype, preprocessing, …
    features/clips.csv                 clip_id,label,split   (split ∈ train/val/test)

One file per backbone loads in one sequential read (or not at all, when memory-mapped), instead of
thousands of small-file opens that each cost a metadata round trip on Lustre/NFS. Writers go
through `write_store`, which writes every file atomically, meta.json last, so a store with a
meta.json is complete.

Variable-length clips: a store whose meta.json says `"ragged": true` holds clips of different
lengths padded to T = `frames` (the longest); lengths.npy says how many leading frames of each row
are real (1 ≤ length ≤ T). Frames past a clip's length are padding and never data: readers take
the mask from the lengths (orze.worker.data). A store without lengths.npy (every store written
before lengths existed, and every store whose clips share one length) has every clip full length.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orze.layout import STORE_CLIPS, STORE_FEATURES, STORE_LENGTHS, STORE_META
from orze.store.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

FORMAT = "orze-features/1"
SPLITS = ("train", "val", "test")
PARTIAL_DIR = "partial"  # features/<backbone>/partial/: an unfinished, resumable extraction


class FeatureStoreError(RuntimeError):
    """A feature store or clips.csv is missing or inconsistent; the message names the file."""


@dataclass
class FeatureStore:
    backbone: str
    path: Path
    ids: list[str]
    array: np.ndarray  # (N, T, D), usually a read-only memmap
    meta: dict[str, Any]
    lengths: np.ndarray | None = None  # (N,) real frames per row; None = every row full length

    def __post_init__(self) -> None:
        if self.lengths is None:
            self.lengths = np.full(len(self.ids), self.frames, dtype=np.int64)

    @property
    def ragged(self) -> bool:
        """Whether the store records per-clip lengths (clips of different lengths)."""
        return bool(self.meta.get("ragged", False))

    @property
    def dim(self) -> int:
        return int(self.array.shape[2])

    @property
    def frames(self) -> int:
        return int(self.array.shape[1])

    def rows(self, clip_ids: list[str]) -> np.ndarray:
        """Row indices of the given clip ids; names the first missing clip."""
        index = {cid: i for i, cid in enumerate(self.ids)}
        out = np.empty(len(clip_ids), dtype=np.int64)
        for j, cid in enumerate(clip_ids):
            i = index.get(cid)
            if i is None:
                raise FeatureStoreError(
                    f"{self.path / 'clips.txt'}: clip '{cid}' from features/clips.csv has no "
                    f"features for backbone '{self.backbone}'")
            out[j] = i
        return out

    def read(self, rows: np.ndarray) -> np.ndarray:
        """float32 copy of the given rows. Rows that form one ascending run (a split stored as a
        contiguous block, as every Orze writer lays it out) are one sequential slice of the
        memory map; anything else falls back to a gather."""
        if len(rows) and rows[-1] - rows[0] == len(rows) - 1 and bool(np.all(np.diff(rows) == 1)):
            block = self.array[int(rows[0]):int(rows[-1]) + 1]
        else:
            block = self.array[rows]
        return np.asarray(block, dtype=np.float32)


def split_grouped(ids: list[str], clips: list["Clip"]) -> list[str]:
    """`ids` reordered so each split is one contiguous block (train, val, test; ids clips.csv does
    not list go last), keeping the order within a block. Writers store rows in this order so a
    worker reads a split as one sequential slice."""
    rank = {c.clip_id: SPLITS.index(c.split) for c in clips}
    return sorted(ids, key=lambda cid: rank.get(cid, len(SPLITS)))  # sorted() is stable


def check_lengths(where: Path, lengths: Any, n: int, frames: int) -> np.ndarray:
    """Per-clip lengths as int32, checked: N integers in 1..frames; the error names `where`."""
    arr = np.asarray(lengths)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise FeatureStoreError(f"{where}: expected {n} integer clip lengths, got dtype {arr.dtype} "
                                f"shape {arr.shape}")
    bad = np.flatnonzero((arr < 1) | (arr > frames))
    if len(bad):
        raise FeatureStoreError(f"{where}: row {int(bad[0])} has length {int(arr[bad[0]])}; lengths "
                                f"must be 1..{frames} (the stored frames per row)")
    return arr.astype(np.int32)


def length_meta(lengths: np.ndarray | None) -> dict[str, Any]:
    """meta.json keys recording per-clip lengths: `ragged` and their min/mean/max."""
    if lengths is None:
        return {}
    return {"ragged": True, "lengths": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 3),
                                        "max": int(lengths.max())}}


def write_lengths(directory: Path, lengths: np.ndarray | None) -> None:
    """lengths.npy for a ragged store (before meta.json); a stale one of a replaced store is removed."""
    if lengths is None:
        (directory / STORE_LENGTHS).unlink(missing_ok=True)
        return
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(lengths, dtype=np.int32))
    atomic_write_bytes(directory / STORE_LENGTHS, buf.getvalue())


def write_store(directory: Path, backbone: str, ids: list[str], array: np.ndarray,
                meta: dict[str, Any], lengths: Any = None) -> None:
    """Write a store from an in-memory (N, T, D) array. `lengths` (N integers in 1..T) makes it
    ragged: rows are padded to T and frames past each length are padding (stored as given)."""
    directory = Path(directory)
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[0] != len(ids):
        raise FeatureStoreError(
            f"{directory}: expected an (N, T, D) array with N = {len(ids)} clips, got {array.shape}")
    if len(set(ids)) != len(ids):
        raise FeatureStoreError(f"{directory}: duplicate clip ids")
    if lengths is not None:
        lengths = check_lengths(directory, lengths, len(ids), int(array.shape[1]))
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array.astype(np.float16, copy=False)))
    atomic_write_bytes(directory / STORE_FEATURES, buf.getvalue())
    atomic_write_text(directory / STORE_CLIPS, "".join(f"{i}\n" for i in ids))
    write_lengths(directory, lengths)
    full = {"format": FORMAT, "backbone": backbone, "num_clips": len(ids),
            "frames": int(array.shape[1]), "dim": int(array.shape[2]), "dtype": "float16",
            **meta, **length_meta(lengths)}
    atomic_write_json(directory / STORE_META, full)


def open_store(directory: Path, backbone: str | None = None, mmap: bool = True) -> FeatureStore:
    directory = Path(directory)
    backbone = backbone or directory.name
    meta_path = directory / STORE_META
    if not meta_path.exists():
        hint = " (generate demo features with `orze demo features`, or see `orze features --help`)"
        raise FeatureStoreError(f"{meta_path}: no feature store for backbone '{backbone}'{hint}")
    try:
        meta = json.loads(meta_path.read_text())
        ids = (directory / STORE_CLIPS).read_text().split()
        array = np.load(directory / STORE_FEATURES, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as e:
        raise FeatureStoreError(f"{directory}: unreadable feature store: {e}") from None
    if array.ndim != 3 or array.shape[0] != len(ids):
        raise FeatureStoreError(
            f"{directory}/features.npy: shape {array.shape} does not match {len(ids)} ids in clips.txt")
    lengths = None
    if meta.get("ragged"):
        path = directory / STORE_LENGTHS
        try:
            raw = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise FeatureStoreError(f"{path}: meta.json says the store is ragged but its clip lengths "
                                    f"are unreadable: {e}") from None
        lengths = check_lengths(path, raw, len(ids), int(array.shape[1])).astype(np.int64)
    return FeatureStore(backbone, directory, ids, array, meta, lengths)


@dataclass(frozen=True)
class Clip:
    clip_id: str
    label: int
    split: str


def read_clips(path: Path) -> list[Clip]:
    """Parse features/clips.csv, naming the line and field of any error."""
    path = Path(path)
    if not path.exists():
        raise FeatureStoreError(f"{path}: not found (clip_id,label,split)")
    clips: list[Clip] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"clip_id", "label", "split"} - set(reader.fieldnames or [])
        if missing:
            raise FeatureStoreError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            if row["split"] not in SPLITS:
                raise FeatureStoreError(
                    f"{path}:{line}: split {row['split']!r} is not one of {', '.join(SPLITS)}")
            # a class index 0..K-1; the task type's checks (binary: 0/1) are orze.task's
            if not (row["label"] or "").isascii() or not (row["label"] or "").isdigit():
                raise FeatureStoreError(f"{path}:{line}: label {row['label']!r} is not a class index "
                                        f"(an integer 0, 1, …)")
            clips.append(Clip(row["clip_id"], int(row["label"]), row["split"]))
    return clips


def split_hash(clip_ids: list[str]) -> str:
    """Order-free hash of a split's clip ids (used to prove which clips a run trained on)."""
    return hashlib.sha256("\n".join(sorted(clip_ids)).encode()).hexdigest()[:16]


def write_clips(path: Path, clips: list[Clip]) -> None:
    lines = ["clip_id,label,split\n"] + [f"{c.clip_id},{c.label},{c.split}\n" for c in clips]
    atomic_write_text(path, "".join(lines))
