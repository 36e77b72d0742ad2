"""Slot packing (pure): peak estimates from measured runs, the per-device memory ledger, the
usable capacity of a device and the slot plan of `slots_per_gpu: auto`."""

import pytest

from orze.config import SchedulerConfig
from orze.daemon.packing import SAFETY, MemoryLedger, PeakIndex, shape_key, usable_capacity
from orze.daemon.slots import device_capacities, plan_slots

CFG = {"backbone": "vjepa2", "temporal_encoder": "retnet", "d_model": 128, "num_layers": 2,
       "num_heads": 4, "batch_size": 64, "seq_len": 16, "learning_rate": 1e-3}


def row(peak, device="cuda", **over):
    return {"config": {**CFG, **over}, "peak_memory_mb": peak, "device": device}


def test_estimate_prefers_same_shape_then_largest_on_kind_then_default():
    idx = PeakIndex()
    assert idx.estimate(CFG, "cuda:0", 2048.0) == (2048.0, "default_peak_mb")
    idx.add(row(1000.0))
    idx.add(row(1500.0, learning_rate=3e-4))     # same shape: training knobs do not change memory
    idx.add(row(5000.0, batch_size=256))
    idx.add(row(9000.0, device="cpu"))
    need, basis = idx.estimate(CFG, "cuda:1", 2048.0)
    assert need == pytest.approx(1500.0 * SAFETY) and basis == "measured (same shape)"
    need, basis = idx.estimate({**CFG, "d_model": 512}, "cuda:0", 2048.0)
    assert need == pytest.approx(5000.0 * SAFETY) and "largest measured" in basis
    assert idx.estimate(CFG, "cpu", 2048.0)[0] == pytest.approx(9000.0 * SAFETY)


def test_estimate_ignores_rows_without_a_measurement():
    idx = PeakIndex()
    idx.add({"config": CFG, "peak_memory_mb": None})
    idx.add({"config": None, "peak_memory_mb": 10.0})
    assert idx.by_shape == {} and idx.by_kind == {}


def test_fusion_lists_are_one_shape_in_any_order():
    assert shape_key({**CFG, "backbone": ["b", "a"]}) == shape_key({**CFG, "backbone": ["a", "b"]})


def test_ledger_never_oversubscribes_but_always_runs_one():
    led = MemoryLedger({"cuda:0": 10_000.0})
    assert led.fits("cuda:0", 50_000.0)          # nothing running: the big one runs alone
    led.reserve("cuda:0", 0, 4000.0)
    assert led.fits("cuda:0", 6000.0) and not led.fits("cuda:0", 6000.1)
    led.reserve("cuda:0", 1, 6000.0)
    assert not led.fits("cuda:0", 1.0)
    led.release("cuda:0", 0)
    assert led.fits("cuda:0", 4000.0) and led.used("cuda:0") == 6000.0
    assert MemoryLedger({"cuda:1": None}).fits("cuda:1", 1e9)   # unknown capacity: never holds back


def test_usable_capacity_subtracts_fraction_and_per_process_overhead():
    assert usable_capacity(80_000.0, 0.9, 4, 600.0) == pytest.approx(72_000.0 - 2_400.0)
    assert usable_capacity(None, 0.9, 4, 600.0) is None
    assert usable_capacity(1000.0, 0.5, 4, 600.0) == 0.0


def test_auto_plans_max_slots_per_gpu_and_capacity_follows_config():
    cfg = SchedulerConfig(slots_per_gpu="auto", max_slots_per_gpu=3, device_memory_mb=10_000,
                          memory_fraction=0.8)
    slots = plan_slots(cfg, gpus=[0, 1], cores=12)
    assert [s.device for s in slots] == ["cuda:0"] * 3 + ["cuda:1"] * 3
    assert {s.env["ORZE_THREADS"] for s in slots} == {"2"}
    caps = device_capacities(slots, cfg)
    assert caps == {"cuda:0": pytest.approx(8000.0 - 3 * 600.0), "cuda:1": pytest.approx(8000.0 - 3 * 600.0)}
    fixed = plan_slots(SchedulerConfig(slots_per_gpu=2), gpus=[0], cores=8)
    assert len(fixed) == 2
    cpu = plan_slots(SchedulerConfig(cpu_slots=3, device_memory_mb=3000, memory_fraction=0.5), gpus=[], cores=6)
    assert device_capacities(cpu, SchedulerConfig(device_memory_mb=3000, memory_fraction=0.5)) == {"cpu": 1500.0}


def test_worker_device_cpu_keeps_experiments_off_gpus():
    from orze.config import ProjectConfig
    from orze.daemon.slots import plan_node_slots

    on_gpu = ProjectConfig.model_validate({"scheduler": {"gpus": [0, 1], "cpu_slots": 3}})
    assert [s.device for s in plan_node_slots(on_gpu, cores=6)] == ["cuda:0", "cuda:1"]
    cpu = ProjectConfig.model_validate({"scheduler": {"gpus": [0, 1], "cpu_slots": 3}, "worker": {"device": "cpu"}})
    slots = plan_node_slots(cpu, cores=6)
    assert [s.device for s in slots] == ["cpu"] * 3
    assert all(s.env["ORZE_DEVICE"] == "cpu" and s.env["CUDA_VISIBLE_DEVICES"] == "" for s in slots)


def test_warm_mode_needs_the_builtin_worker():
    from pydantic import ValidationError

    from orze.config import WorkerConfig

    assert WorkerConfig().resolved_mode == "warm"
    assert WorkerConfig(command=["x"]).resolved_mode == "cold"
    assert WorkerConfig(mode="cold").resolved_mode == "cold"
    with pytest.raises(ValidationError, match="custom command runs cold"):
        WorkerConfig(command=["x"], mode="warm")
