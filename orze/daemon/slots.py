"""Worker slots of this node: `slots_per_gpu` per GPU found through NVML (with `auto`,
`max_slots_per_gpu`, of which memory packing decides how many run at once), else a configurable
number of CPU slots. Each slot knows the environment its worker runs with."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from orze.config import SchedulerConfig
from orze.slurm.environment import allowed_gpus

log = logging.getLogger(__name__)


@dataclass
class Slot:
    index: int
    device: str                     # "cpu" or "cuda:<n>" (the physical GPU)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.index}:{self.device}"


def detect_gpus() -> list[int]:
    """GPU indices through NVML, restricted to this process's allocation (CUDA_VISIBLE_DEVICES /
    SLURM_JOB_GPUS), not the whole machine's; [] when there is no driver or no GPU. A node whose
    NVML is present but broken says so (it would otherwise silently run as a CPU node)."""
    try:
        import pynvml
    except ImportError:
        log.info("nvidia-ml-py is not installed: no GPUs detected, running on CPU slots")
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        log.info("no NVIDIA driver library on this node: running on CPU slots")
        return []
    except Exception as e:  # a driver/library mismatch, a GPU in a bad state
        log.warning("NVML failed to initialise (%s: %s): this node runs on CPU slots; set "
                    "scheduler.gpus to a list of GPU indices to use GPUs without NVML", type(e).__name__, e)
        return []
    try:
        return allowed_gpus(os.environ, pynvml.nvmlDeviceGetCount())
    except Exception as e:
        log.warning("NVML could not count GPUs (%s): this node runs on CPU slots", e)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def plan_slots(cfg: SchedulerConfig, gpus: list[int] | None = None, cores: int | None = None) -> list[Slot]:
    """Pure slot planning from the config, the GPUs found and the CPU count."""
    if cfg.gpus == "none":
        gpus = []
    elif isinstance(cfg.gpus, list):
        gpus = list(cfg.gpus)
    elif gpus is None:
        gpus = detect_gpus()
    cores = cores or os.cpu_count() or 1
    slots: list[Slot] = []
    if gpus:
        per_gpu = cfg.max_slots_per_gpu if cfg.slots_per_gpu == "auto" else cfg.slots_per_gpu
        per_slot_threads = max(1, cores // (len(gpus) * per_gpu))
        for g in gpus:
            for _ in range(per_gpu):
                slots.append(Slot(len(slots), f"cuda:{g}", {
                    "CUDA_VISIBLE_DEVICES": str(g), "ORZE_DEVICE": "cuda",
                    "ORZE_THREADS": str(cfg.threads_per_slot or per_slot_threads)}))
        return slots
    threads = cfg.threads_per_slot or max(1, cores // cfg.cpu_slots)
    for i in range(cfg.cpu_slots):
        slots.append(Slot(i, "cpu", {"CUDA_VISIBLE_DEVICES": "", "ORZE_DEVICE": "cpu",
                                      "ORZE_THREADS": str(threads)}))
    return slots


def plan_node_slots(project, gpus: list[int] | None = None, cores: int | None = None) -> list[Slot]:
    """The node's slots for a project: `worker.device: cpu` keeps experiments off any GPU."""
    sched = project.scheduler
    if project.worker.device == "cpu":
        sched = sched.model_copy(update={"gpus": "none"})
    return plan_slots(sched, gpus, cores)


def device_capacities(slots: list[Slot], cfg: SchedulerConfig) -> dict[str, float | None]:
    """Usable memory (MiB) per device the slots run on, for packing: the configured
    `device_memory_mb` or the measured total, times `memory_fraction`, less a CUDA context per
    GPU slot. None where it cannot be measured (packing then never holds a start back)."""
    from orze.daemon.packing import CUDA_CONTEXT_MB, gpu_memory_mb, host_memory_mb, usable_capacity

    out: dict[str, float | None] = {}
    for device in sorted({s.device for s in slots}):
        n = sum(1 for s in slots if s.device == device)
        if device.startswith("cuda:"):
            total = cfg.device_memory_mb or gpu_memory_mb(int(device.split(":")[1]))
            out[device] = usable_capacity(total, cfg.memory_fraction, n, CUDA_CONTEXT_MB)
        else:
            total = cfg.device_memory_mb or host_memory_mb()
            out[device] = usable_capacity(total, cfg.memory_fraction, n, 0.0)
    return out
