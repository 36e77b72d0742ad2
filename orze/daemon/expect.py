"""What the daemon expects of a run, computed from the research directory itself.

Independent of the worker's code: the split table, labels and positives per split from
features/clips.csv, the stored frames per clip from each backbone's features.npy header, and the
hashes of the stored feature rows the worker says it read (recomputed from features.npy). The
result is plain data for the pure checks in orze.verification.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from orze.features.store import SPLITS, FeatureStoreError, open_store, read_clips, split_hash
from orze.layout import Layout

if TYPE_CHECKING:
    from orze.config import ProjectConfig
    from orze.verification.metric import MetricSpec

log = logging.getLogger(__name__)


def labels_hash(pairs: list[tuple[str, int]]) -> str:
    """Same definition as the worker's (orze.worker.data.labels_hash), written out independently."""
    return hashlib.sha256("\n".join(sorted(f"{c}:{int(v)}" for c, v in pairs)).encode()).hexdigest()[:16]


def split_expectations(layout: Layout) -> dict[str, Any] | None:
    """Split hashes, sizes, positives and labels hashes from features/clips.csv; None without one
    (a custom task). A clip listed in two splits makes every run's split check fail, as it should."""
    if not layout.clips_csv.exists():
        return None
    try:
        clips = read_clips(layout.clips_csv)
    except FeatureStoreError:
        return None
    ids: dict[str, list[str]] = {s: [] for s in SPLITS}
    pairs: dict[str, list[tuple[str, int]]] = {s: [] for s in SPLITS}
    for c in clips:
        ids[c.split].append(c.clip_id)
        pairs[c.split].append((c.clip_id, int(c.label)))
    if len({c.clip_id for c in clips}) != len(clips):
        bad = "clips.csv lists a clip in more than one split"
        return {"split_hashes": {s: bad for s in SPLITS}}
    return {"split_hashes": {s: split_hash(v) for s, v in ids.items()},
            "split_sizes": {s: len(v) for s, v in ids.items()},
            "split_positives": {s: sum(1 for _, y in pairs[s] if y > 0) for s in SPLITS},
            "labels_hashes": {s: labels_hash(pairs[s]) for s in SPLITS}}


def feature_expectations(layout: Layout, effective: dict[str, Any] | None) -> dict[str, Any]:
    """Stored frames per clip and the hashes of the feature rows the worker reports having read,
    recomputed from features/<backbone>/features.npy (memory-mapped: a few rows are read)."""
    out: dict[str, Any] = {"rows": {}}
    feats = (effective or {}).get("features")
    if not isinstance(feats, list):
        return out
    for f in feats:
        b = f.get("backbone") if isinstance(f, dict) else None
        if not isinstance(b, str):
            continue
        try:
            store = open_store(layout.backbone_dir(b), b)
        except (FeatureStoreError, OSError, ValueError) as e:
            log.warning("cannot open features of %s to verify a run: %s", b, e)
            continue
        out.setdefault("stored_frames", store.frames)
        if "clip_lengths" not in out:
            out.update(length_expectations(layout, store))
        wanted = [cid for rows in (f.get("rows") or {}).values() for cid, _ in rows
                  if isinstance(cid, str)]
        have = set(store.ids)
        known = [c for c in wanted if c in have]
        hashes = {}
        if known:
            rows = store.read(store.rows(known))
            hashes = {c: hashlib.sha256(np.ascontiguousarray(r, dtype=np.float32).tobytes()).hexdigest()[:16]
                      for c, r in zip(known, rows)}
        out["rows"][b] = hashes
    return out


def length_expectations(layout: Layout, store) -> dict[str, Any]:
    """The real frames of every clip per split (in clips.csv order) from a ragged store's
    lengths.npy; {} for a store without lengths (every clip full length, `stored_frames`)."""
    if not store.ragged:
        return {}
    try:
        clips = read_clips(layout.clips_csv)
        per = {s: [c.clip_id for c in clips if c.split == s] for s in SPLITS}
        return {"clip_lengths": {s: [int(v) for v in store.lengths[store.rows(ids)]] for s, ids in per.items()}}
    except FeatureStoreError as e:
        log.warning("cannot read clip lengths of %s to verify a run: %s", store.backbone, e)
        return {}


def run_context(project: "ProjectConfig") -> tuple[bool, "MetricSpec"]:
    """(whether runs come from the built-in worker, the ranked metric's spec), from the project the
    daemon runs with (the configuration its workers were started with, read once). The spec is
    the registry's definition of task.metric (orze.metrics), never rebuilt by hand."""
    from orze.verification.metric import MetricSpec

    return not project.worker.command, MetricSpec.of(project.task.spec)


def task_expectations(layout: Layout, project: "ProjectConfig") -> dict[str, Any]:
    """The task as the daemon reads it: its type, metric, and the classes of features/clips.csv
    (orze.task, the same rules the worker applies; None when clips.csv is absent or unreadable,
    or its labels do not fit the task: the worker then fails with the reason)."""
    from orze.task import TaskError, classes_from_labels

    out: dict[str, Any] = {"type": str(project.task.type), "metric": project.task.spec.name}
    try:
        clips = read_clips(layout.clips_csv)
        labels = {s: [c.label for c in clips if c.split == s] for s in SPLITS}
        classes = classes_from_labels(labels, project.task.type, layout.clips_csv)
    except (FeatureStoreError, TaskError):
        return {**out, "classes": None}
    return {**out, "classes": classes.count, "outputs": classes.outputs,
            "class_counts": classes.per_split}
