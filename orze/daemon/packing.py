"""Slot packing: several experiments per device when they fit, never more than fit.

Pure logic over plain data, used by the daemon at each start:

- `PeakIndex` learns peak memory from finished runs (the leaderboard's `peak_memory_mb`, reserved
  device memory on a GPU, the process's peak resident set on CPU) and estimates a configuration's
  need: the largest peak measured for the same memory-relevant shape (backbones, encoder, width,
  depth, heads, batch size, sequence length) on the same kind of device; failing that, the largest
  peak measured on that kind of device at all (conservative); failing that, `default_peak_mb`.
  Estimates carry a safety margin.
- `MemoryLedger` keeps, per device, what the experiments running there were estimated to need,
  and admits a new one only if the sum stays within the device's usable memory. A device with
  nothing running always takes one experiment, so a configuration larger than every estimate
  still runs (alone); if it then runs out of memory, the OOM heal halves its batch.

With `slots_per_gpu: auto` the node plans `max_slots_per_gpu` slots per GPU and the ledger decides
how many of them run at once, which is "as many as fit, by measured peak memory".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAFETY = 1.2   # estimates are multiplied by this: peaks vary a little between runs and seeds
SHAPE_KEYS = ("backbone", "temporal_encoder", "d_model", "num_layers", "num_heads", "batch_size", "seq_len")


def device_kind(device: str | None) -> str:
    return "cuda" if str(device or "").startswith("cuda") else "cpu"


def shape_key(config: dict[str, Any]) -> tuple:
    def norm(v):
        return tuple(sorted(v)) if isinstance(v, list) else v
    return tuple(norm(config.get(k)) for k in SHAPE_KEYS)


@dataclass
class PeakIndex:
    by_shape: dict[tuple, float] = field(default_factory=dict)
    by_kind: dict[str, float] = field(default_factory=dict)

    def add(self, row: dict[str, Any]) -> None:
        peak = row.get("peak_memory_mb")
        config = row.get("config")
        if not isinstance(peak, (int, float)) or peak <= 0 or not isinstance(config, dict):
            return
        kind = device_kind(row.get("device"))
        key = (kind, shape_key(config))
        self.by_shape[key] = max(self.by_shape.get(key, 0.0), float(peak))
        self.by_kind[kind] = max(self.by_kind.get(kind, 0.0), float(peak))

    def estimate(self, config: dict[str, Any], device: str, default_mb: float) -> tuple[float, str]:
        """(MiB the configuration is expected to need on `device`, what the figure is based on)."""
        kind = device_kind(device)
        exact = self.by_shape.get((kind, shape_key(config)))
        if exact is not None:
            return exact * SAFETY, "measured (same shape)"
        if kind in self.by_kind:
            return self.by_kind[kind] * SAFETY, f"largest measured on {kind}"
        return default_mb, "default_peak_mb"


@dataclass
class MemoryLedger:
    capacity_mb: dict[str, float]                     # usable MiB per device
    reserved: dict[str, dict[int, float]] = field(default_factory=dict)

    def used(self, device: str) -> float:
        return sum(self.reserved.get(device, {}).values())

    def fits(self, device: str, need_mb: float) -> bool:
        held = self.reserved.get(device)
        if not held:
            return True   # one experiment per device always runs
        cap = self.capacity_mb.get(device)
        return cap is None or self.used(device) + need_mb <= cap

    def reserve(self, device: str, slot: int, need_mb: float) -> None:
        self.reserved.setdefault(device, {})[slot] = need_mb

    def release(self, device: str, slot: int) -> None:
        self.reserved.get(device, {}).pop(slot, None)


def usable_capacity(total_mb: float | None, fraction: float, slots_on_device: int,
                    process_overhead_mb: float) -> float | None:
    """What experiments on a device may reserve: a fraction of its memory, less each slot's
    per-process overhead (a CUDA context, which a job's own peak does not include)."""
    if total_mb is None:
        return None
    return max(0.0, total_mb * fraction - slots_on_device * process_overhead_mb)


CUDA_CONTEXT_MB = 600.0   # a CUDA context and its libraries per process (H100, torch 2.x)


def host_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def gpu_memory_mb(index: int) -> float | None:
    """Total memory of a physical GPU through NVML (None without a driver)."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).total / 2**20
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
