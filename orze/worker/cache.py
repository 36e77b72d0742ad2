"""Feature cache of a warm worker: what one experiment loaded, kept for the next.

A warm worker (orze.worker.warm) runs many experiments in one process. Most of them read the same
backbones and the same split, so the cache keeps, per (backbone, device):

- the split table of features/clips.csv (clip ids and labels per split), and
- each split's standardised float32 tensor, resident on the slot's device (GPU memory on a GPU
  slot), before sequence fitting: fitting to `seq_len` is a cheap view or pad done per experiment.

Entries are keyed by the identity of the files they came from (inode, size, mtime of clips.csv and
of the store's files), so a rewritten store or a new clips.csv is loaded afresh, never served
stale. The cache is bounded (`max_mb`), least recently used first out. Callers must treat the
tensors as read-only; training gathers batches by indexing, which copies.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch


def file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = Path(path).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "evictions": self.evictions}


@dataclass
class FeatureCache:
    max_mb: float = 8192.0
    entries: "OrderedDict[tuple, tuple[Any, float]]" = field(default_factory=OrderedDict)
    stats: CacheStats = field(default_factory=CacheStats)
    last_hit: bool = False

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        """The cached value for `key`, else `load()` (cached if it fits the bound)."""
        if key in self.entries:
            self.entries.move_to_end(key)
            self.stats.hits += 1
            self.last_hit = True
            return self.entries[key][0]
        self.stats.misses += 1
        self.last_hit = False
        value = load()
        size = _size_mb(value)
        if size <= self.max_mb:
            self.entries[key] = (value, size)
            self._evict()
        return value

    @property
    def size_mb(self) -> float:
        return sum(size for _, size in self.entries.values())

    def _evict(self) -> None:
        while self.entries and self.size_mb > self.max_mb:
            self.entries.popitem(last=False)
            self.stats.evictions += 1


def _size_mb(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.numel() / 2**20
    if isinstance(value, dict):
        return sum(_size_mb(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size_mb(v) for v in value)
    return 0.0
