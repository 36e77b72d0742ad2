"""Forward+backward throughput and peak memory of every temporal encoder at the reference scale.

Reference scale: 1,184 training clips of T = 20 frames with D = 1,024 features, batch 32, an AdamW
step per batch (what one training epoch of the worker does, without data loading: the features
sit on the device for the whole run, as in the worker). Reports clips/s over `--epochs` timed
epochs after one warm-up batch, and peak memory:
- CUDA: torch.cuda.max_memory_allocated (bf16 autocast, as the worker trains there);
- CPU: peak resident-set growth above the baseline with model and features resident, over the
  warm-up and timed steps, sampled from /proc/self/statm every 2 ms (tracemalloc does not see
  torch's allocator); fp32. Activations, gradients and optimiser state, in other words.

    python scripts/bench_encoders.py                       # CPU, and CUDA when available
    python scripts/bench_encoders.py --d-model 128 --layers 4 --device cpu --json out.json
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import torch
import typer
from rich.console import Console
from rich.table import Table

from orze.worker.encoders import available, build_encoder, describe

app = typer.Typer(add_completion=False)


class RssPeak:
    """Peak RSS above the starting value while the context is open (Linux /proc; 0 elsewhere)."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * self.page
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> "RssPeak":
        self.base = self._rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def delta(self) -> int:
        return max(0, self.peak - self.base)


def bench_one(name: str, device: str, *, clips: int, T: int, D: int, d_model: int, layers: int, heads: int,
              batch: int, epochs: int, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = build_encoder(name, input_dim=D, d_model=d_model, num_layers=layers, num_heads=heads,
                          dropout=0.1).to(dev).train()
    head = torch.nn.Linear(d_model, 1).to(dev)
    params = list(model.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    # Features resident on the device; variable lengths (a third of the clips padded) as in real data.
    x = torch.randn(clips, T, D, device=dev)
    lengths = torch.randint(max(1, T // 2), T + 1, (clips,), device=dev)
    mask = torch.arange(T, device=dev)[None, :] < lengths[:, None]
    y = (torch.rand(clips, device=dev) < 0.3).float()
    use_amp = dev.type == "cuda"

    def step(i: int) -> None:
        xb, mb, yb = x[i:i + batch], mask[i:i + batch], y[i:i + batch]
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
            h = model(xb, mb)
            pooled = (h * mb[..., None]).sum(1) / mb.sum(1, keepdim=True)
            logits = head(pooled).squeeze(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # CPU memory: RSS growth from the resident-data baseline, over the warm-up and timed steps (taken
    # after warm-up the allocator would reuse the warm-up's freed pages and report nothing).
    meter = RssPeak() if dev.type == "cpu" else None
    if meter:
        meter.__enter__()
    step(0)                                                   # warm-up: allocator, kernels, lazy init
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, clips, batch):
            step(i)
    sync()
    seconds = time.perf_counter() - t0
    if meter:
        meter.__exit__(None, None, None)
        peak = meter.delta
    else:
        peak = torch.cuda.max_memory_allocated() - base
    info = describe(model)
    return {"encoder": name, "device": device, "class": info["class"], "parameters": info["parameters"],
            "d_model": info["d_model"], "num_layers": info["num_layers"], "num_heads": info["num_heads"],
            "clips": clips, "T": T, "D": D, "batch": batch, "epochs": epochs,
            "seconds_per_epoch": seconds / epochs, "clips_per_s": clips * epochs / seconds,
            "peak_mem_mb": peak / 2 ** 20, "amp": "bf16" if use_amp else "fp32",
            "threads": torch.get_num_threads() if dev.type == "cpu" else None}


def _bench_in_child(name: str, device: str, threads: int, **kwargs) -> dict:
    if threads:
        torch.set_num_threads(threads)
    return bench_one(name, device, **kwargs)


@app.command()
def main(
    encoders: str = typer.Option("all", help="comma-separated registry names, or 'all'"),
    device: str = typer.Option("auto", help="cpu, cuda, or auto (CPU, plus CUDA when available)"),
    clips: int = typer.Option(1184, help="training clips per epoch"),
    frames: int = typer.Option(20, "--frames", "-T", help="frames per clip"),
    feature_dim: int = typer.Option(1024, "--feature-dim", "-D", help="per-frame feature width"),
    d_model: int = typer.Option(64, help="encoder width"),
    layers: int = typer.Option(2, help="encoder depth (num_layers)"),
    heads: int = typer.Option(4, help="num_heads"),
    batch: int = typer.Option(32, help="batch size"),
    epochs: int = typer.Option(1, help="timed epochs"),
    threads: int = typer.Option(0, help="torch CPU threads (0 = torch's default)"),
    json_out: Path = typer.Option(None, "--json", help="also write the rows as JSON here"),
) -> None:
    if threads:
        torch.set_num_threads(threads)
    names = available() if encoders == "all" else [n.strip() for n in encoders.split(",") if n.strip()]
    unknown = sorted(set(names) - set(available()))
    if unknown:
        raise typer.BadParameter(f"unknown encoders {unknown}; available: {', '.join(available())}",
                                 param_hint="--encoders")
    if device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [device]
    rows = []
    console = Console()
    # One fresh process per measurement: memory one encoder freed must not hide the next one's peak.
    ctx = multiprocessing.get_context("spawn")
    for dev in devices:
        for name in names:
            kwargs = dict(clips=clips, T=frames, D=feature_dim, d_model=d_model, layers=layers, heads=heads,
                          batch=batch, epochs=epochs, threads=threads)
            with ctx.Pool(1) as pool:
                rows.append(pool.apply(_bench_in_child, (name, dev), kwargs))
            console.print(f"[dim]{dev} {name}: {rows[-1]['clips_per_s']:.0f} clips/s[/dim]")
    table = Table(title=f"Encoders, forward+backward+AdamW: {clips} clips × T={frames} × D={feature_dim}, "
                        f"d_model={d_model}, layers={layers}, heads={heads}, batch={batch}")
    for col in ("device", "encoder", "params", "s/epoch", "clips/s", "peak MiB", "precision"):
        table.add_column(col, justify="left" if col in ("device", "encoder", "precision") else "right")
    for r in rows:
        table.add_row(r["device"], r["encoder"], f"{r['parameters']:,}", f"{r['seconds_per_epoch']:.2f}",
                      f"{r['clips_per_s']:.0f}", f"{r['peak_mem_mb']:.1f}", r["amp"])
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    app()
