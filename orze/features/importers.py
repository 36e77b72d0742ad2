"""Import features computed elsewhere into the store format (features/<backbone>/).

Sources (format auto-detected from the path, or named):
  npy-dir   a directory of per-clip files <clip_id>.npy, or <clip_id>.npz holding one array (or the
            array named by `key`); each (T, D). This is also the converter from per-clip files.
  npz       one .npz holding one (T, D) array per clip, each named by its clip id (no --index).
  array     one (N, T, D) .npy (or an .npz with one array / `key`) plus an index file naming the N
            clip ids in row order: a text file with one id a line, or a CSV with a clip_id column.
  parquet   one row per clip: a `clip_id` column and a `column` (default "features") holding a
            T-long list of D-long lists, or a flat list of T·D floats with `frames` = T given;
            or one row per (clip, frame): clip_id, `frame` (0..T-1) and a D-long list per row.

Validation (the store is replaced only if every row passes): every clip of features/clips.csv
present, one feature dimension D for all clips and at least one frame each, a floating dtype, no
NaN/inf, values inside the float16 range (the store's dtype). Rows for clips that clips.csv does
not list are reported and left out.

Clips of different lengths T_i (per-clip sources: npy-dir, npz, parquet) make a ragged store:
rows padded with zeros to the longest clip and each clip's length in lengths.npy
(orze.features.store), so the worker masks the padding. Clips of one length make a plain store,
exactly as before lengths existed. `import_arrays` is the same import from an in-memory mapping
{clip_id: (T_i, D) array}, for scripts and tests.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np

from orze.layout import STORE_META
from orze.features.store import Clip, FeatureStoreError, split_grouped
from orze.features.writer import write_store_rows

Format = Literal["auto", "npy-dir", "npz", "array", "parquet"]
FORMATS = ("auto", "npy-dir", "npz", "array", "parquet")
FLOAT16_MAX = float(np.finfo(np.float16).max)


class FeatureImportError(FeatureStoreError):
    """A source that cannot be imported; the message names the file and what is wrong."""


@dataclass
class ImportReport:
    store: Path
    format: str
    clips: int = 0
    frames: int = 0      # stored frames per row: the longest clip
    dim: int = 0
    ignored: list[str] = field(default_factory=list)  # ids in the source but not in clips.csv
    ragged: bool = False
    lengths: dict[str, float] = field(default_factory=dict)  # min/mean/max real frames per clip


def detect_format(source: Path, index: Path | None) -> str:
    source = Path(source)
    if source.is_dir():
        return "npy-dir"
    if source.suffix.lower() == ".parquet":
        return "parquet"
    if source.suffix.lower() == ".npz" and index is None:
        return "npz"
    if source.suffix.lower() in (".npy", ".npz"):
        if index is None:
            raise FeatureImportError(f"{source}: one array needs --index (the clip ids in row order)")
        return "array"
    raise FeatureImportError(f"{source}: cannot tell the format (a directory of per-clip .npy/.npz, "
                       f"an .npy/.npz array with --index, or a .parquet file); pass --format")


# --- readers: each returns {clip_id: (T, D) array} for the clips it holds ----------------------

def _load_array(path: Path, key: str | None) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.files)
                if key is not None:
                    if key not in names:
                        raise FeatureImportError(f"{path}: no array '{key}' (has: {', '.join(names)})")
                    return z[key]
                if len(names) != 1:
                    raise FeatureImportError(f"{path}: holds {len(names)} arrays ({', '.join(names)}); "
                                       f"name one with --key")
                return z[names[0]]
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FeatureImportError:
        raise
    except (OSError, ValueError) as e:
        raise FeatureImportError(f"{path}: not a readable numpy file: {e}") from None


class LazyArrays(Mapping):
    """clip id -> (T, D) array, each loaded only when asked for (one clip in memory at a time)."""

    def __init__(self, loaders: dict[str, Callable[[], np.ndarray]]) -> None:
        self._loaders = loaders

    def __getitem__(self, cid: str) -> np.ndarray:
        return self._loaders[cid]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaders)

    def __len__(self) -> int:
        return len(self._loaders)


def _load_clip_file(path: Path, key: str | None) -> np.ndarray:
    arr = np.load(path, mmap_mode="r", allow_pickle=False) if path.suffix.lower() == ".npy" \
        else _load_array(path, key)
    if arr.ndim != 2:
        raise FeatureImportError(f"{path}: expected a (T, D) array for one clip, got shape {arr.shape}")
    return arr


def read_npy_dir(directory: Path, key: str | None = None) -> LazyArrays:
    directory = Path(directory)
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".npy", ".npz"))
    if not files:
        raise FeatureImportError(f"{directory}: no per-clip .npy or .npz files")
    loaders: dict[str, Callable[[], np.ndarray]] = {}
    for p in files:
        if p.stem in loaders:
            raise FeatureImportError(f"{directory}: clip '{p.stem}' has both a .npy and a .npz file")
        loaders[p.stem] = partial(_load_clip_file, p, key)
    return LazyArrays(loaders)


def read_npz_clips(path: Path) -> dict[str, np.ndarray]:
    """An .npz of per-clip (T_i, D) arrays named by clip id."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {name: z[name] for name in z.files}
    except (OSError, ValueError) as e:
        raise FeatureImportError(f"{path}: not a readable .npz archive: {e}") from None
    if not out:
        raise FeatureImportError(f"{path}: holds no arrays (one (T, D) array per clip, named by clip id)")
    for cid, arr in out.items():
        if arr.ndim != 2:
            raise FeatureImportError(f"{path}: array '{cid}' has shape {arr.shape}; expected (T, D) for "
                                     f"one clip (for one (N, T, D) array pass --index)")
    return out


def read_index(path: Path) -> list[str]:
    path = Path(path)
    if not path.exists():
        raise FeatureImportError(f"{path}: index file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or "clip_id" not in rows[0]:
            raise FeatureImportError(f"{path}: index CSV needs a clip_id column")
        ids = [r["clip_id"] for r in rows]
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not ids:
        raise FeatureImportError(f"{path}: no clip ids")
    return ids


def read_array(path: Path, index: Path, key: str | None = None) -> dict[str, np.ndarray]:
    path = Path(path)
    arr = _load_array(path, key)
    ids = read_index(index)
    if arr.ndim != 3:
        raise FeatureImportError(f"{path}: expected an (N, T, D) array, got shape {arr.shape}")
    if arr.shape[0] != len(ids):
        raise FeatureImportError(f"{path}: {arr.shape[0]} rows but {index} names {len(ids)} clip ids")
    dup = _first_duplicate(ids)
    if dup is not None:
        raise FeatureImportError(f"{index}: clip_id '{dup}' appears more than once")
    return {cid: arr[i] for i, cid in enumerate(ids)}


def read_parquet(path: Path, column: str = "features", frames: int | None = None) -> dict[str, np.ndarray]:
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise FeatureImportError(f"{path}: not a readable Parquet file: {e}") from None
    for col in ("clip_id", column):
        if col not in df.columns:
            raise FeatureImportError(f"{path}: no column '{col}' (columns: {', '.join(map(str, df.columns))})")
    out: dict[str, np.ndarray] = {}
    if "frame" in df.columns:  # long layout: one row per (clip, frame)
        for cid, g in df.groupby("clip_id", sort=False):
            g = g.sort_values("frame")
            want = list(range(len(g)))
            if g["frame"].tolist() != want:
                raise FeatureImportError(f"{path}: clip '{cid}': frames must be 0..{len(g) - 1} once each")
            out[str(cid)] = _stack_rows(path, str(cid), list(g[column]))
        return out
    dup = _first_duplicate(df["clip_id"].astype(str).tolist())
    if dup is not None:
        raise FeatureImportError(f"{path}: clip_id '{dup}' appears in more than one row "
                           f"(add a 'frame' column for one row per frame)")
    for cid, value in zip(df["clip_id"].astype(str), df[column]):
        arr = _to_float_array(path, cid, value)
        if arr.ndim == 1:
            if frames is None:
                raise FeatureImportError(f"{path}: clip '{cid}': '{column}' is a flat list; pass --frames T")
            if arr.size % frames:
                raise FeatureImportError(f"{path}: clip '{cid}': {arr.size} values do not split into "
                                   f"{frames} frames")
            arr = arr.reshape(frames, -1)
        if arr.ndim != 2:
            raise FeatureImportError(f"{path}: clip '{cid}': expected T lists of D values, got shape {arr.shape}")
        out[cid] = arr
    return out


def _stack_rows(path: Path, cid: str, values: list[Any]) -> np.ndarray:
    rows = [_to_float_array(path, cid, v) for v in values]
    if any(r.ndim != 1 for r in rows) or len({r.size for r in rows}) != 1:
        raise FeatureImportError(f"{path}: clip '{cid}': every frame needs a list of D values of one length")
    return np.stack(rows)


def _to_float_array(path: Path, cid: str, value: Any) -> np.ndarray:
    try:
        if isinstance(value, np.ndarray) and value.dtype == object:
            value = [np.asarray(v) for v in value]
            arr = np.stack(value) if value else np.empty((0,))
        else:
            arr = np.asarray(value)
    except ValueError as e:
        raise FeatureImportError(f"{path}: clip '{cid}': ragged feature lists ({e})") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise FeatureImportError(f"{path}: clip '{cid}': features are not numeric (dtype {arr.dtype})")
    return arr


def _first_duplicate(ids: list[str]) -> str | None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None


# --- validation and writing ----------------------------------------------------------------

def plan(features: Mapping[str, np.ndarray], clips: list[Clip], source: Path
         ) -> tuple[list[str], list[str]]:
    """(ids to write, in clips.csv order grouped by split, so each split is one contiguous block;
    ids in the source that clips.csv does not list)."""
    order = split_grouped([c.clip_id for c in clips], clips)
    missing = [cid for cid in order if cid not in features]
    if missing:
        raise FeatureImportError(f"{source}: {len(missing)} clip(s) of features/clips.csv have no "
                                 f"features, first: {', '.join(missing[:5])}")
    listed = set(order)
    return order, sorted(cid for cid in features if cid not in listed)


def clip_shapes(features: Mapping[str, np.ndarray], ids: list[str], source: Path) -> tuple[int, int, bool]:
    """(frames = the longest clip, D, ragged) over the clips to write; one D for all, T ≥ 1 each.
    Per-clip .npy files are memory-mapped, so this reads headers only."""
    first = ids[0]
    lengths: set[int] = set()
    dim = None
    for cid in ids:
        shape = features[cid].shape
        if len(shape) != 2 or shape[0] == 0 or shape[1] == 0:
            raise FeatureImportError(f"{source}: clip '{cid}' has shape {shape}; expected (T, D) with "
                                     f"at least one frame")
        if dim is None:
            dim = int(shape[1])
        elif shape[1] != dim:
            raise FeatureImportError(f"{source}: clip '{cid}' has {shape[1]} feature dims, but clip "
                                     f"'{first}' has {dim}; every clip needs the same D")
        lengths.add(int(shape[0]))
    return max(lengths), int(dim), len(lengths) > 1


def check_row(source: Path, cid: str, arr: np.ndarray) -> np.ndarray:
    """One clip's array, checked (dtype, finite, float16 range) and converted to float16."""
    if not np.issubdtype(arr.dtype, np.floating):
        raise FeatureImportError(f"{source}: clip '{cid}' has dtype {arr.dtype}; features must be "
                                 f"floating point (float16/32/64)")
    arr = np.asarray(arr)
    finite = np.isfinite(arr)
    if not finite.all():
        t, d = np.argwhere(~finite)[0]
        raise FeatureImportError(f"{source}: clip '{cid}' has NaN/inf at frame {t}, dim {d}")
    peak = float(np.abs(arr).max())
    if peak > FLOAT16_MAX:
        raise FeatureImportError(f"{source}: clip '{cid}' has |value| {peak:g} beyond the float16 "
                                 f"range of the store (±{FLOAT16_MAX:g}); rescale first")
    return arr.astype(np.float16)


def _rows(features: Mapping[str, np.ndarray], order: list[str], source: Path,
          lengths: list[int]) -> Iterator[np.ndarray]:
    for cid in order:
        arr = check_row(source, cid, features[cid])
        lengths.append(int(arr.shape[0]))
        yield arr


def import_arrays(store_dir: Path, backbone: str, features: Mapping[str, np.ndarray], clips: list[Clip],
                  *, source: Path | str = "<arrays>", fmt: str = "arrays", meta: dict[str, Any] | None = None,
                  overwrite: bool = False) -> ImportReport:
    """Validate {clip_id: (T_i, D) array} against `clips` and write features/<backbone>/; clips of
    different lengths make a ragged store (zero padding, lengths.npy). E.g. for a ragged test:

        import_arrays(layout.backbone_dir("digits"), "digits", {cid: x[:n] ...}, clips, overwrite=True)
    """
    source = Path(source)
    if (Path(store_dir) / STORE_META).exists() and not overwrite:
        raise FeatureImportError(f"{store_dir}/meta.json: a store for '{backbone}' exists; pass --force "
                                 f"to replace it")
    ids, ignored = plan(features, clips, source)
    frames, dim, ragged = clip_shapes(features, ids, source)
    full_meta = {"source": "import", "import_format": fmt, "imported_from": str(source.resolve()),
                 "ignored_clips": len(ignored), **(meta or {})}
    lengths: list[int] = []
    # rows are checked as they stream in; a bad one aborts before the store is touched
    write_store_rows(Path(store_dir), backbone, ids, _rows(features, ids, source, lengths),
                     frames, dim, full_meta, ragged=ragged)
    stats = {"min": min(lengths), "mean": round(sum(lengths) / len(lengths), 3), "max": max(lengths)}
    return ImportReport(store=Path(store_dir), format=fmt, clips=len(ids), frames=frames, dim=dim,
                        ignored=ignored, ragged=ragged, lengths=stats)


def import_features(store_dir: Path, backbone: str, source: Path, clips: list[Clip], *,
                    fmt: str = "auto", index: Path | None = None, key: str | None = None,
                    column: str = "features", frames: int | None = None,
                    meta: dict[str, Any] | None = None, overwrite: bool = False) -> ImportReport:
    """Read `source`, validate it against `clips` and write features/<backbone>/."""
    source = Path(source)
    if not source.exists():
        raise FeatureImportError(f"{source}: not found")
    if fmt not in FORMATS:
        raise FeatureImportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "auto":
        fmt = detect_format(source, index)
    if (Path(store_dir) / STORE_META).exists() and not overwrite:
        raise FeatureImportError(f"{store_dir}/meta.json: a store for '{backbone}' exists; pass --force "
                           f"to replace it")
    if fmt == "npy-dir":
        if not source.is_dir():
            raise FeatureImportError(f"{source}: --format npy-dir needs a directory")
        features: Mapping[str, np.ndarray] = read_npy_dir(source, key)
    elif fmt == "npz":
        features = read_npz_clips(source)
    elif fmt == "array":
        if index is None:
            raise FeatureImportError(f"{source}: --format array needs --index")
        features = read_array(source, index, key)
    else:
        features = read_parquet(source, column, frames)
    return import_arrays(store_dir, backbone, features, clips, source=source, fmt=fmt, meta=meta,
                         overwrite=overwrite)
