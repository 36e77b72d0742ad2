"""The closed vocabularies of Orze's on-disk contract: run status, failure class, task type, kept
weights, worker mode, and the kinds of event in runs/events.jsonl.

Each is a `str` enum, so a member is equal to (and serialises as) the plain string written in
result.json, leaderboard rows and events; files written before these enums existed read back the
same. Code compares against members, never against bare strings.
"""

from __future__ import annotations

from enum import Enum


class _Vocab(str, Enum):
    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class RunStatus(_Vocab):
    """The status of a recorded run (a leaderboard row). Only DONE is ranked."""
    DONE = "done"
    FAILED = "failed"
    MISCONFIGURED = "misconfigured"
    PRUNED = "pruned"                  # stopped early by the pruner (docs/pruning.md); never ranked


class FailureClass(_Vocab):
    """Why an attempt did not produce a verified result, from structured evidence only: the
    exception class the worker caught (failure.json), the daemon's own stop reason, the exit
    status. Never from words in a log."""
    INVALID_CONFIG = "invalid_config"
    MISSING_FEATURES = "missing_features"
    NAN_LOSS = "nan_loss"
    OOM = "oom"
    SHAPE_MISMATCH = "shape_mismatch"
    TIMEOUT = "timeout"
    STALLED = "stalled"
    KILLED = "killed"
    CRASH = "crash"
    NO_METRICS = "no_metrics"          # exit 0 without metrics.json
    NO_METRIC = "no_metric"            # metrics.json without a numeric metric
    MISCONFIGURED = "misconfigured"    # ran, but not what the idea asked
    FENCED = "fenced"                  # stopped itself: its lease lapsed (orze/worker/fence.py)

    @property
    def transient(self) -> bool:
        """A plain retry may cure it (the others fail fast, or are healed: see daemon/heal.py)."""
        return self in (FailureClass.CRASH, FailureClass.KILLED)

    @classmethod
    def parse(cls, value: object) -> "FailureClass | None":
        try:
            return cls(value)
        except ValueError:
            return None


class TaskType(_Vocab):
    """configs/orze.yaml's task.type: two classes (0/1, one logit) or K ≥ 2 classes (0..K-1, K logits)."""
    BINARY = "binary"
    MULTICLASS = "multiclass"


class KeepWeights(_Vocab):
    """worker.keep_weights: keep the selected epoch's weights in the run directory, or nothing."""
    BEST = "best"
    NONE = "none"


class WorkerMode(_Vocab):
    WARM = "warm"
    COLD = "cold"


class EventKind(_Vocab):
    """One line of runs/events.jsonl each. Run-state transitions are emitted by
    orze.store.transitions only, one event per transition."""
    NODE_STARTED = "node_started"
    NODE_STOPPING = "node_stopping"
    NODE_STOPPED = "node_stopped"
    ADMITTED = "admitted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    STARTED = "started"
    FINISHED = "finished"
    REQUEUED = "requeued"            # a failed attempt goes back for another (maybe healed)
    RELEASED = "released"            # a claimed idea goes back unchanged (shutdown, start failure)
    LEASE_LOST = "lease_lost"        # another node presumed this one dead: its copy is discarded
    LEASE_BROKEN = "lease_broken"    # a dead owner's idea re-queued by this node
    RECORDED_ON_RECOVERY = "recorded_on_recovery"
    REQUEUE_FAILED = "requeue_failed"
    STORAGE_FAILING = "storage_failing"    # the shared directory refused a write: no new work
    STORAGE_RECOVERED = "storage_recovered"
    PRUNE_REQUESTED = "prune_requested"   # the pruner asked a running run to stop (orze.daemon.pruner)


class EntryKind(_Vocab):
    """What an entry in a shared directory (the inbox) is, by lstat: never by following a link.
    Only FILE is ever opened (orze/store/safe_read.py)."""
    FILE = "file"
    SYMLINK = "symlink"
    DIRECTORY = "directory"
    FIFO = "fifo"
    SOCKET = "socket"
    DEVICE = "device"
    OTHER = "other"
