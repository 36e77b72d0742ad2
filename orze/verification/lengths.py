"""Checks of the `seq_len` policy on variable-length clips, from the daemon's own reading of the store.

The worker records in effective_config.json (`sequence_lengths`) the crop policy, and per split
the lengths it saw (min/mean/max real frames), the share of real frames the crop dropped and the
share of fitted positions that are padding. The daemon reads every clip's length from the store
(orze.daemon.expect: `clip_lengths` per split in clips.csv order; absent for a store whose clips
are all `stored_frames` long) and this module recomputes the same figures independently of the
worker's code, and the stored frames of row 0 each split must have used (`expected_windows`).
"""

from __future__ import annotations

from typing import Any

from orze.verification import reference as ref

SPLITS = ("train", "val", "test")
CROP = "centre"   # the documented policy: the centre seq_len real frames, at training and evaluation


def length_stats(lengths: list[int], seq_len: int) -> dict[str, float]:
    """min/mean/max real frames; the share of real frames a crop to `seq_len` drops; the share of
    the seq_len positions per clip that are padding."""
    n = len(lengths)
    total = sum(lengths)
    kept = sum(min(v, seq_len) for v in lengths)
    return {"min": min(lengths) if n else 0, "mean": total / n if n else 0.0,
            "max": max(lengths) if n else 0,
            "frames_dropped": (total - kept) / total if total else 0.0,
            "padding": 1.0 - kept / (seq_len * n) if n else 0.0}


def split_lengths(expect: dict[str, Any], effective: dict[str, Any]) -> dict[str, list[int]] | None:
    """Every clip's length per split as the daemon read it; None when unknown (no stored frames)."""
    got = expect.get("clip_lengths")
    if isinstance(got, dict):
        return {s: list(got.get(s) or []) for s in SPLITS}
    stored = expect.get("stored_frames") or effective.get("stored_frames")
    sizes = expect.get("split_sizes") or effective.get("split_sizes") or {}
    if not stored:
        return None
    return {s: [int(stored)] * int(sizes.get(s, 1) or 1) for s in SPLITS}


def expected_windows(expect: dict[str, Any], effective: dict[str, Any], seq_len: int
                     ) -> dict[str, list[int]] | None:
    """Per split, the stored frame index at each of the seq_len positions of row 0 (-1 = padding)."""
    lens = split_lengths(expect, effective)
    if lens is None:
        return None
    return {s: ref.centre_window(int(v[0]), seq_len) if v else None for s, v in lens.items()}


def check_length_policy(c, config: dict[str, Any], effective: dict[str, Any], expect: dict[str, Any]) -> None:
    """`sequence.length_policy`: the recorded policy and per-split figures match the store's lengths."""
    seq = int(config["seq_len"])
    rec = effective.get("sequence_lengths")
    lens = split_lengths(expect, effective)
    if not isinstance(rec, dict) or lens is None:
        c.check("sequence.length_policy", False,
                "sequence: effective_config.json records no sequence_lengths (crop policy, lengths "
                "seen, share of frames dropped) to check against the stored clip lengths")
        return
    wrong = []
    if rec.get("crop") != CROP or rec.get("seq_len") != seq:
        wrong.append(f"policy crop={rec.get('crop')!r} seq_len={rec.get('seq_len')!r} "
                     f"(want {CROP!r}, {seq})")
    for s in SPLITS:
        want = length_stats(lens[s], seq)
        got = (rec.get("splits") or {}).get(s) or {}
        for k, v in want.items():
            g = got.get(k)
            if not isinstance(g, (int, float)) or abs(float(g) - v) > (1e-3 if k == "mean" else 1e-5):
                wrong.append(f"{s}.{k} {g!r} (store: {v:.6g})")
    c.check("sequence.length_policy", not wrong,
            f"sequence: the recorded lengths/crop figures differ from the stored clip lengths at "
            f"seq_len {seq}: {'; '.join(wrong[:4])}")
