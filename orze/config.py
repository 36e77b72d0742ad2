"""The one loader for configs/orze.yaml (project, task, scheduler, worker, admission, agents).

Every section is a pydantic model that forbids unknown keys, so a typo in the project file is an
error naming the file and the field rather than a setting that silently does nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orze.agent_config import AgentSpec, SweepConfig
from orze.layout import Layout
from orze.metrics import Metric
from orze.metrics import names as metric_names
from orze.metrics import resolve as resolve_metric
from orze.notify.config import NotifyConfig
from orze.pruning.settings import PruningConfig
from orze.slurm.settings import SlurmConfig
from orze.vocab import KeepWeights, TaskType, WorkerMode


class ConfigError(ValueError):
    """configs/orze.yaml is invalid; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskConfig(_Section):
    """What is predicted and how runs are ranked (docs/tasks.md). The classes come from the labels
    in features/clips.csv (orze.task checks them); `metric` names a metric of orze.metrics' registry
    that applies to `type` (the bare name, its `val_` key, or an alias such as the old `val_auc`)."""
    name: str = "dashcam-collision"
    type: TaskType = Field(default=TaskType.BINARY, description="binary | multiclass")
    metric: str = Field(default="ap", description="a registered metric: " + ", ".join(metric_names()))

    @model_validator(mode="after")
    def _metric_registered(self) -> "TaskConfig":
        self.metric = resolve_metric(self.metric, self.type).name   # ValueError names the allowed
        return self

    @property
    def spec(self) -> Metric:
        """The ranked metric, from the registry (the one definition every consumer reads)."""
        return resolve_metric(self.metric, self.type)


class SchedulerConfig(_Section):
    poll_s: float = Field(default=1.0, gt=0, description="idle sleep between inbox scans")
    cpu_slots: int = Field(default=1, ge=1, description="worker slots when no GPU is found")
    gpus: Literal["auto", "none"] | list[int] = "auto"
    slots_per_gpu: int | Literal["auto"] = Field(
        default=1, description="concurrent experiments per GPU, or auto: as many as fit in its memory")
    max_slots_per_gpu: int = Field(default=8, ge=1, description="upper bound for slots_per_gpu: auto")
    memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="share of each device's memory that experiments may reserve")
    device_memory_mb: float | None = Field(
        default=None, gt=0, description="memory per device for packing (default: measured)")
    default_peak_mb: float = Field(
        default=2048.0, gt=0, description="assumed peak of a configuration with no measured neighbour")
    threads_per_slot: int = Field(default=0, ge=0, description="torch threads per CPU worker (0: cores / slots)")
    max_attempts: int = Field(default=2, ge=1, description="runs of one idea before it is failed for good")
    timeout_min: float = Field(default=120.0, gt=0)
    stall_min: float = Field(default=15.0, gt=0)
    lease_s: float = Field(default=120.0, gt=0)
    claim_method: Literal["excl", "link"] = Field(
        default="excl", description="exclusive create: O_EXCL (NFSv3+, Lustre) or link()+nlink (portable)")
    heartbeat_s: float = Field(default=10.0, gt=0)
    shutdown_grace_s: float = Field(default=30.0, ge=0)


class WorkerConfig(_Section):
    command: list[str] | None = Field(
        default=None, description="custom worker argv; the run directory is appended (DESIGN §5)")
    device: Literal["auto", "cpu"] = "auto"
    mode: Literal["auto", "warm", "cold"] = Field(
        default="auto", description="warm: a long-lived process per slot takes jobs; cold: a process per "
                                    "experiment; auto: warm for the built-in worker, cold for a command")
    cache_mb: float = Field(default=8192.0, ge=0, description="feature cache bound per warm worker")
    max_jobs_per_process: int = Field(default=0, ge=0, description="replace a warm worker after N jobs (0: never)")
    max_memory_growth_mb: float = Field(
        default=4096.0, ge=0, description="replace a warm worker whose memory grew by more (0: no bound)")
    keep_weights: KeepWeights = Field(
        default=KeepWeights.BEST, description="best: keep the selected epoch's weights (weights.pt, for "
                                              "`orze predict`); none: keep only the predictions")

    @model_validator(mode="after")
    def _warm_needs_builtin(self) -> "WorkerConfig":
        if self.mode == "warm" and self.command:
            raise ValueError("mode 'warm' runs the built-in worker; a custom command runs cold "
                             "(set mode: cold or auto)")
        return self

    @property
    def resolved_mode(self) -> WorkerMode:
        if self.mode == "auto":
            return WorkerMode.COLD if self.command else WorkerMode.WARM
        return WorkerMode(self.mode)


class AdmissionConfig(_Section):
    near_duplicates: Literal["off", "flag", "refuse"] = "flag"
    near_tolerance: float = Field(default=0.1, ge=0, description="relative distance on continuous dims")
    max_file_bytes: int = Field(
        default=1_000_000, ge=1, description="an idea file larger than this (checked before reading) is refused")
    max_ideas_per_file: int = Field(default=200, ge=1)
    max_yaml_nodes: int = Field(
        default=20_000, ge=1, description="YAML nodes per file counted with aliases expanded (alias bombs)")
    max_yaml_depth: int = Field(default=32, ge=1, le=200, description="nesting levels per idea file")
    record_excerpt_bytes: int = Field(
        default=2048, ge=0, description="what a rejection record keeps of what was given: its first bytes")
    stray_dotfile_s: float = Field(
        default=600.0, gt=0, description="a dot-file older than this in the inbox is reported (once)")
    require_feature_store: bool = Field(
        default=True, description="reject an idea whose backbone (or a fused one) has no features/<backbone>/ "
                                  "store; false for a custom worker that reads its own data")


class StorageConfig(_Section):
    group: str | None = Field(
        default=None, description="group that may read runs/ (set-group-ID directories; records of what "
                                  "agents gave become 0640 instead of 0600); null: the owner only")


class ProjectConfig(_Section):
    task: TaskConfig = Field(default_factory=TaskConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    admission: AdmissionConfig = Field(default_factory=AdmissionConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    agents: list[AgentSpec] = Field(default_factory=list)
    sweeps: SweepConfig = Field(default_factory=SweepConfig)
    slurm: SlurmConfig = Field(default_factory=SlurmConfig)   # orze slurm submit (orze/slurm/settings.py)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)   # docs/pruning.md
    extra: dict[str, Any] = Field(default_factory=dict, description="free-form, for custom workers")

    def bind(self, layout: Layout) -> Layout:
        """`layout` as this project uses it: its claim method, storage group and lease period."""
        return layout.with_claim_method(self.scheduler.claim_method).with_group(self.storage.group) \
            .with_lease(self.scheduler.lease_s)


def load_project(layout: Layout) -> ProjectConfig:
    path: Path = layout.project_config
    if not path.exists():
        return ProjectConfig()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as e:
        msgs = []
        for err in e.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")  # our validators' own messages
            msgs.append(f"{where}: {msg}")
        raise ConfigError(f"{path}: " + "; ".join(msgs)) from None
