"""Clip lengths in a store, and what the space's `seq_len` does to them (for `orze features check`
and `orze features import`).

Pure functions over plain data: `length_stats` (min/mean/max real frames, the share of the stored
array that is padding), `seq_len_effect` (the share of real frames a crop to seq_len drops, the
clips it crops, and the share of fitted positions that are padding) and `length_issues`, which
turns them into warnings: seq_len values of the space that drop frames, a store that is mostly
padding, and — in a store without lengths — trailing all-zero frames that look like padding added
by hand (which the worker would then treat as real data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PADDING_WARN = 0.25        # warn when more than this share of the stored array is padding
HAND_PADDING_WARN = 0.05   # ... or, in a store without lengths, trailing all-zero frames


def length_stats(lengths: np.ndarray, frames: int) -> dict[str, Any]:
    lens = np.asarray(lengths, dtype=np.int64)
    return {"min": int(lens.min()), "mean": round(float(lens.mean()), 3), "max": int(lens.max()),
            "padding": round(1.0 - float(lens.sum()) / (frames * len(lens)), 4)}


def seq_len_effect(lengths: np.ndarray, seq_len: int) -> dict[str, Any]:
    """What the worker's policy (centre crop of longer clips, zero padding of shorter) does."""
    lens = np.asarray(lengths, dtype=np.int64)
    kept = np.minimum(lens, seq_len)
    return {"seq_len": int(seq_len), "frames_dropped": round(float((lens - kept).sum() / lens.sum()), 4),
            "clips_cropped": int((lens > seq_len).sum()),
            "padding": round(1.0 - float(kept.sum()) / (seq_len * len(lens)), 4)}


def trailing_zero_frames(block: np.ndarray) -> np.ndarray:
    """(n, T, D) → per clip, how many trailing frames are exactly zero (hand padding's mark)."""
    nonzero = np.any(block != 0, axis=2)                        # (n, T)
    last = np.where(nonzero.any(axis=1), block.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1), -1)
    return block.shape[1] - 1 - last


def seq_len_values(space_dims: dict[str, Any]) -> tuple[list[int], int | None]:
    """The seq_len values the space allows (choices, or low/high) and its default."""
    dim = space_dims.get("seq_len")
    if dim is None:
        return [], None
    if dim.choices:
        values = [int(v) for v in dim.choices]
    elif dim.low is not None and dim.high is not None:
        values = sorted({int(dim.low), int(dim.high)})
    else:
        values = []
    return values, (int(dim.default) if dim.default is not None else None)


def length_issues(backbone: str, path: str, lengths: np.ndarray, frames: int, ragged: bool,
                  seq_lens: list[int], default: int | None, space_path: str,
                  trailing_zero: int = 0) -> list[tuple[str, str, str]]:
    """(code, path, message) warnings about lengths and seq_len for one store."""
    out: list[tuple[str, str, str]] = []
    stats = length_stats(lengths, frames)
    if ragged and stats["padding"] > PADDING_WARN:
        out.append(("padding", f"{path}/lengths.npy",
                    f"{stats['padding']:.0%} of '{backbone}' is padding (clips of {stats['min']}–"
                    f"{stats['max']} frames, mean {stats['mean']:g}, padded to {frames}); it is masked, "
                    f"but costs memory and compute"))
    if not ragged and trailing_zero / (frames * len(lengths)) > HAND_PADDING_WARN:
        share = trailing_zero / (frames * len(lengths))
        out.append(("hand-padding", f"{path}/features.npy",
                    f"{share:.0%} of '{backbone}' are trailing all-zero frames, but the store records "
                    f"no lengths, so they count as real frames (statistics, pooling, attention); "
                    f"import the clips as per-clip arrays of their own lengths instead"))
    for s in sorted(set(seq_lens) | ({default} if default else set())):
        eff = seq_len_effect(lengths, s)
        if eff["frames_dropped"] > 0 and (s == default or s == max(seq_lens, default=s)):
            which = "the default" if s == default else "the largest"
            out.append(("seq-len-crops", space_path,
                        f"seq_len {s} ({which} in the space) drops {eff['frames_dropped']:.1%} of "
                        f"the real frames of '{backbone}' ({eff['clips_cropped']} of {len(lengths)} clips "
                        f"longer, longest {stats['max']}; each keeps its centre {s} frames)"))
    return out
