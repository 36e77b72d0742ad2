"""A streaming writer for the feature store: rows go straight into features.npy on disk.

`write_store` (orze.features.store) needs the whole (N, T, D) array in memory and then a second
copy of it as .npy bytes; extraction and import of a large dataset (say 100k clips × 24 × 1024)
would hold tens of GB. `write_store_rows` produces the same files from an iterator of (T, D) rows
with memory for one row: features.npy is filled through a memory map of a temporary file in the
same directory, fsynced and renamed into place, then clips.txt, then meta.json last — the contract
of `write_store` (a store with a meta.json is complete). If the iterator raises (a row fails
validation), the temporary file is removed and the directory is left as it was, except that an
existing meta.json was removed before the rename so a half-replaced store never looks complete.

With `ragged=True` each row may be shorter than `frames` (the longest clip): it is written at the
start of its row, the rest stays zero (padding), and its length goes to lengths.npy (written
before meta.json; see orze.features.store).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from orze.layout import STORE_CLIPS, STORE_FEATURES, STORE_META
from orze.features.store import FORMAT, FeatureStoreError, length_meta, write_lengths
from orze.store.atomic import atomic_write_json, atomic_write_text, fsync_dir


def write_store_rows(directory: Path, backbone: str, ids: list[str], rows: Iterable[np.ndarray],
                     frames: int, dim: int, meta: dict[str, Any], ragged: bool = False) -> None:
    directory = Path(directory)
    if not ids:
        raise FeatureStoreError(f"{directory}: no clips to write")
    if len(set(ids)) != len(ids):
        raise FeatureStoreError(f"{directory}: duplicate clip ids")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".features.npy.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16,
                                        shape=(len(ids), frames, dim))
        lengths = np.empty(len(ids), dtype=np.int32)
        n = 0
        for n, row in enumerate(rows, start=1):
            if n > len(ids):
                raise FeatureStoreError(f"{directory}: more rows than the {len(ids)} clip ids")
            row = np.asarray(row)
            fits = row.ndim == 2 and row.shape[1] == dim and (
                1 <= row.shape[0] <= frames if ragged else row.shape[0] == frames)
            if not fits:
                want = f"(1..{frames}, {dim})" if ragged else f"{(frames, dim)}"
                raise FeatureStoreError(f"{directory}: row {n - 1} (clip '{ids[n - 1]}') has shape "
                                        f"{row.shape}, expected {want}")
            out[n - 1, :row.shape[0]] = row   # a memmap of a new file: the rest is already 0
            lengths[n - 1] = row.shape[0]
        if n != len(ids):
            raise FeatureStoreError(f"{directory}: {n} rows for {len(ids)} clip ids")
        out.flush()
        del out
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        (directory / STORE_META).unlink(missing_ok=True)
        os.replace(tmp, directory / STORE_FEATURES)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
    atomic_write_text(directory / STORE_CLIPS, "".join(f"{i}\n" for i in ids))
    write_lengths(directory, lengths if ragged else None)
    # the same meta keys as write_store, so both writers' stores are indistinguishable
    full = {"format": FORMAT, "backbone": backbone, "num_clips": len(ids), "frames": int(frames),
            "dim": int(dim), "dtype": "float16", **meta, **length_meta(lengths if ragged else None)}
    atomic_write_json(directory / STORE_META, full)
