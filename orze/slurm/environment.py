"""What a process learns from the Slurm job it runs in (pure functions of an environment mapping).

- `job_from_env`: the job, if any: its id as `squeue -r` names it (`1234_0` for array task 0 of
  array job 1234, else `1240`), the node Slurm placed it on, how often it was requeued.
- `node_name`: the daemon's node identity inside a job, `<SLURMD_NODENAME>-<job>`: unique even when
  several pilot jobs share a host, stable across a requeue onto the same host (the restarted
  daemon then recovers its own claims at once; on another host the old claims are recovered by
  lease expiry, as for any dead node).
- `allowed_gpus`: which GPUs this node may use: the allocation (`CUDA_VISIBLE_DEVICES`, else
  `SLURM_STEP_GPUS`/`SLURM_JOB_GPUS`), never every GPU NVML sees on the machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlurmJob:
    job_id: str                    # SLURM_JOB_ID: unique per array task
    array_job_id: str | None       # SLURM_ARRAY_JOB_ID: the id sbatch printed, for an array
    array_task_id: str | None
    node: str | None               # SLURMD_NODENAME: unset in an salloc shell on a login node
    restart_count: int             # SLURM_RESTART_COUNT: requeues so far
    procid: int | None             # SLURM_PROCID: the task's rank inside an srun step

    @property
    def key(self) -> str:
        """The job as `squeue -r` and `scancel` name it."""
        if self.array_job_id and self.array_task_id is not None:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id

    @property
    def submitted_id(self) -> str:
        """The id `sbatch` printed (what runs/slurm/jobs/ records)."""
        return self.array_job_id or self.job_id


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def job_from_env(env: Mapping[str, str] | None = None) -> SlurmJob | None:
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None
    return SlurmJob(job_id=job_id, array_job_id=env.get("SLURM_ARRAY_JOB_ID") or None,
                    array_task_id=env.get("SLURM_ARRAY_TASK_ID") or None,
                    node=env.get("SLURMD_NODENAME") or None,
                    restart_count=_int(env.get("SLURM_RESTART_COUNT")) or 0,
                    procid=_int(env.get("SLURM_PROCID")))


def node_name(env: Mapping[str, str] | None = None) -> str | None:
    """The node identity for `orze run` inside a Slurm job, or None outside one."""
    job = job_from_env(env)
    if job is None or job.node is None:
        return None
    return f"{job.node.split('.')[0]}-{job.key}"


def _gpu_list(value: str) -> list[str]:
    v = value.strip()
    if v in ("", "NoDevFiles", "none", "-1"):
        return []
    return [x.strip() for x in v.split(",") if x.strip()]


def allocated_gpus(env: Mapping[str, str] | None = None) -> list[str] | None:
    """The GPU entries this process was given, as the scheduler or user wrote them; None when
    nothing restricts it. CUDA_VISIBLE_DEVICES wins: it is what CUDA itself honours."""
    env = os.environ if env is None else env
    for var in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if var in env:
            return _gpu_list(env[var])
    return None


def allowed_gpus(env: Mapping[str, str] | None, count: int) -> list[int]:
    """GPU indices for slots, given the `count` devices NVML found: all of them when nothing
    restricts the process, else the allocated ones (a slot's worker gets CUDA_VISIBLE_DEVICES=<i>,
    which CUDA reads exactly as it read the parent's list)."""
    entries = allocated_gpus(env)
    if entries is None:
        return list(range(count))
    out: list[int] = []
    for e in entries:
        if not e.isdigit():
            log.warning("GPU %r in the allocation is not an index (a UUID or MIG device): not used; "
                        "set scheduler.gpus to plan slots by hand", e)
            continue
        if int(e) >= count:
            log.warning("GPU %s is allocated but only %d device(s) were found: not used", e, count)
            continue
        if int(e) not in out:
            out.append(int(e))
    return out


def heartbeat_fields(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The `slurm` field of a node heartbeat (runs/nodes/<node>.json); None outside a job."""
    job = job_from_env(env)
    if job is None:
        return None
    gpus = allocated_gpus(env)
    return {"job": job.key, "job_id": job.job_id, "submitted_id": job.submitted_id,
            "array_task_id": job.array_task_id, "node": job.node, "restart_count": job.restart_count,
            "gpus": None if gpus is None else ",".join(gpus)}
