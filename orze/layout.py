"""The one place that knows where everything lives in a research directory.

Every path Orze reads or writes is derived here from the research root (DESIGN.md §2), so no other
module joins path strings by hand and two components can never disagree about where a file is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

ROOT_ENV = "ORZE_ROOT"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The research root: the argument, else $ORZE_ROOT, else the current directory (absolute)."""
    chosen = root if root is not None else os.environ.get(ROOT_ENV) or "."
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Layout:
    root: Path
    # How exclusive files (claims, locks, fingerprints, leases) are created on this directory's
    # filesystem: the project's `scheduler.claim_method` (see orze.store.atomic.create_exclusive).
    claim_method: Literal["excl", "link"] = "excl"
    # The group that may read runs/ (the project's `storage.group`; None: the owner's primary group,
    # and records of what agents gave stay owner-only). See orze.store.permissions.
    group: str | None = None
    # The project's `scheduler.lease_s`: how long a silent holder of anything (a claim, a lock)
    # keeps it before others may take it over.
    lease_s: float = 120.0

    @classmethod
    def at(cls, root: str | os.PathLike | None = None) -> "Layout":
        return cls(resolve_root(root))

    def with_claim_method(self, method: Literal["excl", "link"]) -> "Layout":
        return replace(self, claim_method=method)

    def with_group(self, group: str | None) -> "Layout":
        return replace(self, group=group)

    def with_lease(self, lease_s: float) -> "Layout":
        return replace(self, lease_s=lease_s)

    # --- configuration -------------------------------------------------------------------
    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def project_config(self) -> Path:
        return self.configs / "orze.yaml"

    @property
    def space_config(self) -> Path:
        return self.configs / "space.yaml"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def research_prompt(self) -> Path:
        return self.prompts / "research.md"

    @property
    def rules_prompt(self) -> Path:
        return self.prompts / "rules.md"

    # --- features ------------------------------------------------------------------------
    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def clips_csv(self) -> Path:
        return self.features / "clips.csv"

    def backbone_dir(self, backbone: str) -> Path:
        return self.features / backbone

    # --- runs ----------------------------------------------------------------------------
    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def inbox(self) -> Path:
        return self.runs / "inbox"

    @property
    def admitting(self) -> Path:
        """Where a daemon moves an inbox file (by rename) while it admits it."""
        return self.runs / "admitting"

    def admitting_for(self, node: str) -> Path:
        return self.admitting / node

    @property
    def admitted(self) -> Path:
        """Archive of inbox files once every idea in them was admitted or rejected."""
        return self.runs / "admitted"

    @property
    def queue(self) -> Path:
        return self.runs / "queue"

    @property
    def rejected(self) -> Path:
        return self.runs / "rejected"

    @property
    def quarantine(self) -> Path:
        """Inbox entries that are not regular files (links, FIFOs, directories, devices), moved
        here by renaming the entry itself (never following it); their records are in rejected/."""
        return self.runs / "quarantine"

    @property
    def fingerprints(self) -> Path:
        return self.runs / "fingerprints"

    @property
    def exp(self) -> Path:
        return self.runs / "exp"

    def run_dir(self, run_id: str) -> Path:
        return self.exp / run_id

    @property
    def leaderboard(self) -> Path:
        return self.runs / "leaderboard.jsonl"

    @property
    def leaderboard_lock(self) -> Path:
        return self.runs / "leaderboard.lock"

    @property
    def events(self) -> Path:
        return self.runs / "events.jsonl"

    @property
    def events_lock(self) -> Path:
        return self.runs / "events.lock"

    @property
    def nodes(self) -> Path:
        return self.runs / "nodes"

    def node_heartbeat(self, node: str) -> Path:
        return self.nodes / f"{node}.json"

    def node_dir(self, node: str) -> Path:
        """A node's own files (its warm workers' slot logs); its heartbeat is nodes/<node>.json."""
        return self.nodes / node

    def node_curves(self, node: str) -> Path:
        """The epochs of the runs a node is running, one JSON line each, for other nodes' pruners."""
        return self.node_dir(node) / NODE_CURVES

    @property
    def agents(self) -> Path:
        return self.runs / "agents"

    def agent_dir(self, name: str) -> Path:
        return self.agents / name

    @property
    def report(self) -> Path:
        return self.runs / "report"

    @property
    def slurm(self) -> Path:
        """`orze slurm`: generated sbatch scripts; jobs/ (job-id records, stop markers); logs/."""
        return self.runs / "slurm"

    @property
    def slurm_jobs(self) -> Path:
        return self.slurm / "jobs"

    @property
    def slurm_logs(self) -> Path:
        return self.slurm / "logs"

    @property
    def tmp(self) -> Path:
        return self.runs / "tmp"

    @property
    def notify(self) -> Path:
        """Notifications: one marker per event key under sent/ (the node that creates it sends
        it), and each node's delivery status, <node>.json."""
        return self.runs / "notify"

    @property
    def notify_sent(self) -> Path:
        return self.notify / "sent"

    def notify_status(self, node: str) -> Path:
        return self.notify / f"{node}.json"

    def ensure(self) -> "Layout":
        """Create the runs/ tree (idempotent). Configs are created by `orze init`, not here."""
        dirs = [self.runs, self.inbox, self.admitting, self.admitted, self.queue, self.rejected,
                self.fingerprints, self.quarantine, self.exp, self.nodes, self.agents, self.tmp]
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True)
        if self.group:
            from orze.store.permissions import share_with_group

            share_with_group(dirs, self.group)
        return self


# Files inside one run directory (runs/exp/<id>/).
RUN_CONFIG = "config.yaml"
RUN_IDEA = "idea.json"
RUN_CLAIM = "claim"
RUN_HEARTBEAT = "heartbeat"
RUN_LOG = "train.log"
RUN_METRICS = "metrics.json"
RUN_EFFECTIVE = "effective_config.json"
RUN_RESULT = "result.json"
RUN_FAILURE = "failure.json"
RUN_RECORDED = "recorded"
RUN_OUTPUT = "worker.out"
RUN_WORKER_PID = "worker.pid"
RUN_PREDICTIONS = "predictions.npz"   # per split (val, test): ids, labels, probabilities
RUN_WEIGHTS = "weights.pt"            # the selected epoch's weights (worker.keep_weights: best)
RUN_PROGRESS = "progress.jsonl"    # one JSON line per finished epoch, appended by the worker
RUN_PRUNE = "prune.json"           # the pruner's stop request, checked by the worker per epoch
NODE_CURVES = "curves.jsonl"       # under runs/nodes/<node>/: its running runs' epochs (pruning)
RUN_JUDGED = "judged.json"         # the pruner's latest "go on" verdict, which a worker may await

# Files inside one feature store (features/<backbone>/).
STORE_FEATURES = "features.npy"
STORE_CLIPS = "clips.txt"
STORE_META = "meta.json"
STORE_LENGTHS = "lengths.npy"   # (N,) real frames per clip; absent = every clip full length
