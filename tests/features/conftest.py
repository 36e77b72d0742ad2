"""Shared fixtures: tiny generated videos, tiny randomly initialised backbones saved to disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orze.features.backbones import REGISTRY
from orze.features.store import Clip, write_clips
from orze.layout import Layout

SIDE = 32  # input side of the tiny models


def write_video(path: Path, n: int = 20, rate: int = 10, w: int = 48, h: int = 40,
                step: int = 8) -> Path:
    """An MPEG-4 video whose frame i is a flat grey of brightness (i * step) % 256."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=rate)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.full((h, w, 3), (i * step) % 256, np.uint8)
            img[: h // 2, : w // 2, 0] = 255 - (i * step) % 256  # some structure for the models
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """save_pretrained directories of each family's tiny model: loaded back via from_pretrained."""
    base = tmp_path_factory.mktemp("tiny-models")
    out = {}
    for name, b in REGISTRY.items():
        d = base / name
        b.tiny_model(SIDE).save_pretrained(d)
        out[name] = d
    return out


@pytest.fixture
def project(tmp_path) -> tuple[Layout, Path, list[Clip]]:
    """A research dir, a videos dir with three good clips and one corrupt one, and their labels."""
    layout = Layout.at(tmp_path / "research")
    videos = tmp_path / "videos"
    write_video(videos / "c1.mp4", n=20)
    write_video(videos / "sub" / "c2.mp4", n=12, step=12, w=64, h=36)  # another size, same batch
    write_video(videos / "c3.mp4", n=25, step=5)
    (videos / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    clips = [Clip("c1", 0, "train"), Clip("c2", 1, "train"), Clip("c3", 1, "val"),
             Clip("bad", 0, "test")]
    write_clips(tmp_path / "labels.csv", clips)
    return layout, videos, clips


def said(result, text: str) -> bool:
    """Whether the CLI output contains `text`, ignoring where rich wrapped the lines."""
    return "".join(text.split()) in "".join(result.output.split())
