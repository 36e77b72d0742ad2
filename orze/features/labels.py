"""Clip labels for extraction and import: read a labels CSV, merge it into features/clips.csv.

A labels CSV has the columns of features/clips.csv (clip_id,label,split; other columns are
ignored). features/clips.csv is shared by every backbone, so new clips are added to it and a clip
that is already there must keep its label and split: a conflict is an error naming both files.
"""

from __future__ import annotations

from pathlib import Path

from orze.features.store import Clip, FeatureStoreError, read_clips, write_clips


def read_labels(path: Path) -> list[Clip]:
    """read_clips plus: at least one clip, and each clip id once."""
    clips = read_clips(path)
    if not clips:
        raise FeatureStoreError(f"{path}: no clips (expected rows of clip_id,label,split)")
    seen: dict[str, Clip] = {}
    for c in clips:
        if not c.clip_id:
            raise FeatureStoreError(f"{path}: empty clip_id")
        if c.clip_id in seen:
            raise FeatureStoreError(f"{path}: clip_id '{c.clip_id}' appears more than once")
        seen[c.clip_id] = c
    return clips


def conflicts(existing: list[Clip], new: list[Clip]) -> list[str]:
    """Clip ids whose label or split differs between the two lists."""
    old = {c.clip_id: c for c in existing}
    return [c.clip_id for c in new if c.clip_id in old and old[c.clip_id] != c]


def merge_into_clips_csv(clips_csv: Path, new: list[Clip], source: Path | str) -> int:
    """Add the clips of `new` that features/clips.csv lacks; returns how many were added."""
    existing = read_clips(clips_csv) if Path(clips_csv).exists() else []
    bad = conflicts(existing, new)
    if bad:
        raise FeatureStoreError(
            f"{source}: clip '{bad[0]}' has a different label or split in {clips_csv} "
            f"({len(bad)} conflicting clip(s)); fix one of the two files")
    have = {c.clip_id for c in existing}
    added = [c for c in new if c.clip_id not in have]
    if added or not Path(clips_csv).exists():
        write_clips(clips_csv, existing + added)
    return len(added)


def resolve_labels(clips_csv: Path, labels: Path | None) -> tuple[list[Clip], Path]:
    """The clips to work on: from --labels when given (checked against clips.csv), else clips.csv."""
    if labels is None:
        if not Path(clips_csv).exists():
            raise FeatureStoreError(
                f"{clips_csv}: not found; pass --labels CSV (clip_id,label,split) to create it")
        return read_labels(clips_csv), Path(clips_csv)
    clips = read_labels(labels)
    if Path(clips_csv).exists():
        bad = conflicts(read_clips(clips_csv), clips)
        if bad:
            raise FeatureStoreError(
                f"{labels}: clip '{bad[0]}' has a different label or split in {clips_csv} "
                f"({len(bad)} conflicting clip(s)); fix one of the two files")
    return clips, Path(labels)
