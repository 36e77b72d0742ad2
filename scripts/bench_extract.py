"""Benchmark of `orze features extract` on this machine: decoding and end-to-end clips per second.

Generates synthetic videos (PyAV, MPEG-4), then times (1) decode + sampling alone and (2) the whole
extraction into a store, with a backbone built from its config with random weights: `--size tiny`
(test-sized) or `--size full` (the real architecture's compute, e.g. DINOv2 ViT-B; no download).
Prints figures; asserts nothing.

    python scripts/bench_extract.py --clips 16 --width 640 --height 360 --seconds 10 --backbone dinov2_b
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_video(path: Path, seconds: float, rate: int, w: int, h: int, seed: int) -> None:
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(int(seconds * rate)):
            img = np.roll(base, 4 * i, axis=1)  # a panning scene, like a moving camera
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=30)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--backbone", default="dinov2_b")
    ap.add_argument("--size", choices=("tiny", "full"), default="tiny")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    from orze.features.backbones import freeze, get_backbone
    from orze.features.extract import ExtractSettings, extract
    from orze.features.store import Clip
    from orze.features.video import sample_video
    from orze.layout import Layout

    b = get_backbone(args.backbone)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = tmp / "videos"
        videos.mkdir()
        t0 = time.perf_counter()
        for i in range(args.clips):
            write_video(videos / f"clip{i:04d}.mp4", args.seconds, args.rate, args.width, args.height, i)
        print(f"wrote {args.clips} videos {args.width}x{args.height} {args.seconds:g}s@{args.rate}fps "
              f"in {time.perf_counter() - t0:.1f}s")

        t0 = time.perf_counter()
        for i in range(args.clips):
            sample_video(videos / f"clip{i:04d}.mp4", args.fps * b.tubelet,
                         b.input_frames(args.frames), "end")
        dt = time.perf_counter() - t0
        print(f"decode+sample (1 thread): {args.clips / dt:.2f} clips/s")

        if args.size == "tiny":
            side = 32
            model = b.tiny_model(side)
        else:
            model = freeze(b.model_cls()(b.model_cls().config_class()))
            side = None
        clips = [Clip(f"clip{i:04d}", i % 2, "train") for i in range(args.clips)]
        settings = ExtractSettings(fps=args.fps, frames=args.frames, batch_size=args.batch_size,
                                   workers=args.workers, device=args.device, image_size=side)
        t0 = time.perf_counter()
        report = extract(Layout.at(tmp / "research"), b, videos, clips, settings, model=model,
                         progress=False)
        dt = time.perf_counter() - t0
        dev = settings.device if settings.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        print(f"extract {b.name} ({args.size}, {dev}, torch threads {torch.get_num_threads()}): "
              f"{report.total / dt:.2f} clips/s, {report.total * args.frames / dt:.1f} steps/s, "
              f"D={report.dim}")


if __name__ == "__main__":
    main()
