"""What `orze slurm submit` remembers: one record per submitted job under runs/slurm/jobs/.

`<id>.json` holds the job id sbatch printed, when, the script, the topology and the node count
(an array's tasks are `<id>_0` … `<id>_<n-1>`). `<id>.stop` is the stop marker: `orze slurm stop`
creates it before signalling, and the batch script, seeing it, does not requeue itself.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from orze.layout import Layout
from orze.store.atomic import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class JobRecord:
    job_id: str
    submitted_at: float
    script: str
    topology: str
    nodes: int
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def task_keys(self) -> list[str]:
        """The names squeue -r gives the job's pilots."""
        if self.topology == "array":
            return [f"{self.job_id}_{i}" for i in range(self.nodes)]
        return [self.job_id]


def write_record(layout: Layout, rec: JobRecord) -> None:
    layout.slurm_jobs.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.slurm_jobs / f"{rec.job_id}.json", asdict(rec))


def read_records(layout: Layout) -> list[JobRecord]:
    out = []
    for p in sorted(layout.slurm_jobs.glob("*.json")) if layout.slurm_jobs.exists() else []:
        try:
            d = json.loads(p.read_text())
            out.append(JobRecord(**{k: d[k] for k in JobRecord.__dataclass_fields__ if k in d}))
        except (OSError, ValueError, TypeError) as e:
            log.warning("skipping unreadable job record %s: %s", p, e)
    return sorted(out, key=lambda r: r.submitted_at)


def stop_marker(layout: Layout, job_id: str):
    return layout.slurm_jobs / f"{job_id}.stop"


def mark_stopped(layout: Layout, job_id: str) -> None:
    layout.slurm_jobs.mkdir(parents=True, exist_ok=True)
    atomic_write_text(stop_marker(layout, job_id), f"{time.time()}\n")


def is_stopped(layout: Layout, job_id: str) -> bool:
    return stop_marker(layout, job_id).exists()
