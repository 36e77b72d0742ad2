"""Decode a video with PyAV and sample a fixed number of RGB frames at a fixed rate.

Sampling contract: the window holds `count` instants spaced 1/fps apart, aligned to the start, the
centre or the end of the clip (dashcam collision clips end at the event, hence `end` by default in
the CLI). At each instant the frame on screen is taken: the last frame whose timestamp is ≤ the
instant. A clip shorter than the window repeats its first (or last) frame at the instants outside
it, and `Sampled.real` counts the instants that fell inside the clip.

Any decode failure, or a video without one decodable frame, raises VideoError: the caller reports
the clip and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Align = Literal["start", "center", "end"]
ALIGNS = ("start", "center", "end")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


class VideoError(RuntimeError):
    """A video that cannot be decoded; the message names the file."""


@dataclass
class Sampled:
    frames: np.ndarray  # (count, H, W, 3) uint8 RGB
    real: int  # instants inside the clip (count when the clip is at least as long as the window)
    duration: float


def sample_times(start: float, end: float, fps: float, count: int, align: Align) -> np.ndarray:
    """`count` instants 1/fps apart placed in [start, end] (end = the last frame's timestamp)."""
    if fps <= 0 or count < 1:
        raise ValueError(f"fps must be > 0 and count ≥ 1 (got fps={fps}, count={count})")
    span = (count - 1) / fps
    if align == "start":
        first = start
    elif align == "end":
        first = end - span
    elif align == "center":
        first = (start + end) / 2 - span / 2
    else:
        raise ValueError(f"align must be one of {', '.join(ALIGNS)}, got {align!r}")
    return first + np.arange(count) / fps


def pick_frames(frame_times: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each target: last frame with time ≤ target (0 before it)."""
    idx = np.searchsorted(frame_times, targets + 1e-6, side="right") - 1
    return np.clip(idx, 0, len(frame_times) - 1)


def sample_video(path: Path, fps: float, count: int, align: Align = "end") -> Sampled:
    """Decode `path` and return `count` frames sampled at `fps` (see the module contract).

    Frames are selected while decoding, so memory holds at most `count` RGB frames whatever the
    video's length; for a window late in a long clip the decoder first seeks to a keyframe.
    """
    import av

    path = Path(path)
    try:
        first, last = _time_range(path)
        targets = sample_times(first, last, fps, count, align)
        seek = targets[0] - first > 2.0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            picked = _select(container, stream, targets, seek)
            if picked is None:  # the seek overshot the window: decode from the start instead
                container.seek(0)
                picked = _select(container, stream, targets, False)
    except VideoError:
        raise
    except Exception as e:  # PyAV raises many error types (InvalidDataError, OSError, …)
        raise VideoError(f"{path}: cannot decode: {type(e).__name__}: {e}") from None
    if picked is None:
        raise VideoError(f"{path}: no decodable frames")
    frames, real = picked
    return Sampled(frames=frames, real=real, duration=float(last - first))


def _time_range(path: Path) -> tuple[float, float]:
    """Timestamps (s) of the first and last frame, from the packets (demux only, no decoding)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        stream = container.streams.video[0]
        tb = stream.time_base
        pts = [p.pts for p in container.demux(stream) if p.pts is not None]
    if not pts or tb is None:
        raise VideoError(f"{path}: no timestamped video frames (a raw elementary stream? "
                         f"remux it into .mp4/.mkv)")
    return float(min(pts) * tb), float(max(pts) * tb)


def _select(container, stream, targets: np.ndarray, seek: bool) -> tuple[np.ndarray, int] | None:
    """The frame on screen at each target, chosen while decoding; None if a seek overshot."""
    if seek:
        container.seek(int(targets[0] / stream.time_base), stream=stream, backward=True,
                       any_frame=False)
    n = len(targets)
    out: list[np.ndarray | None] = [None] * n
    prev = prev_rgb = first_rgb = None
    first_time = last_time = None
    k = real = 0
    eps = 1e-6
    rate = float(stream.average_rate) if stream.average_rate else 0.0
    for i, frame in enumerate(container.decode(stream)):
        t = float(frame.time) if frame.time is not None else (i / rate if rate else float(i))
        if first_time is None:
            first_time = t
            if seek and t > targets[0] + eps:
                return None
        last_time = t
        while k < n and t > targets[k] + eps:
            if prev is None:  # the window starts before the clip: show its first frame
                if first_rgb is None:
                    first_rgb = frame.to_ndarray(format="rgb24")
                out[k] = first_rgb
            else:
                if prev_rgb is None:
                    prev_rgb = prev.to_ndarray(format="rgb24")
                out[k] = prev_rgb
                real += 1
            k += 1
        if k == n:
            break
        prev, prev_rgb = frame, None
    if prev is None and k == 0:
        return None
    if k < n:  # targets at or after the last frame: it stays on screen
        rgb = prev_rgb if prev_rgb is not None else prev.to_ndarray(format="rgb24")
        frame_dt = 1.0 / rate if rate else 0.0
        for j in range(k, n):
            out[j] = rgb
            if targets[j] <= last_time + frame_dt + eps:
                real += 1
    return np.stack(out), real


def find_videos(directory: Path, clip_ids: list[str]) -> tuple[dict[str, Path], list[str]]:
    """Map clip ids to video files named <clip_id>.<video suffix> anywhere under `directory`.

    Returns (found, missing). Two files with the same clip id are an error naming both.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise VideoError(f"{directory}: not a directory of videos")
    wanted = set(clip_ids)
    found: dict[str, Path] = {}
    for p in sorted(directory.rglob("*")):
        if p.suffix.lower() in VIDEO_SUFFIXES and p.stem in wanted and p.is_file():
            if p.stem in found:
                raise VideoError(f"{directory}: clip '{p.stem}' has two videos: {found[p.stem]} and {p}")
            found[p.stem] = p
    missing = [c for c in clip_ids if c not in found]
    return found, missing
