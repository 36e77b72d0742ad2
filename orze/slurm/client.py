"""Slurm's client commands behind timeouts.

`sbatch`, `squeue`, `scontrol`, `scancel` and `sacct` block for a long time (minutes) when
slurmctld is down or unreachable; every call here has a timeout and turns a hang, a missing
binary or a non-zero exit into a SlurmError whose message says which command and why.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0


class SlurmError(RuntimeError):
    """A Slurm client command failed, hung or is absent."""


def available(command: str = "sbatch") -> bool:
    return shutil.which(command) is not None


def call(argv: Sequence[str], timeout_s: float = DEFAULT_TIMEOUT_S, env: Mapping[str, str] | None = None,
         input: str | None = None) -> str:
    """Run a Slurm client command; its stdout, or SlurmError."""
    if shutil.which(argv[0]) is None:
        raise SlurmError(f"{argv[0]} not found: is Slurm installed on this host (and on PATH)?")
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                              env=dict(os.environ if env is None else env), input=input)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(argv)}` did not answer within {timeout_s:g}s: is slurmctld up and "
                         "reachable?") from None
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise SlurmError(f"`{' '.join(argv)}` exited {proc.returncode}: {' / '.join(msg[-3:]) or 'no output'}")
    return proc.stdout


def sbatch(script_path: str, env: Mapping[str, str] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """Submit a script; the job id sbatch prints (`--parsable`: "<id>" or "<id>;<cluster>")."""
    out = call(["sbatch", "--parsable", script_path], timeout_s, env).strip()
    job = out.split(";")[0].strip()
    if not job.isdigit():
        raise SlurmError(f"sbatch printed {out!r}, not a job id")
    return job


@dataclass(frozen=True)
class JobState:
    job: str          # as squeue -r names it: 1234_0 (array task) or 1240
    job_id: str       # the unique id (SLURM_JOB_ID of the task)
    state: str        # RUNNING, PENDING, COMPLETING, REQUEUED, ...
    nodes: str        # node list, "" while pending
    elapsed: str
    time_left: str
    reason: str
    restarts: int | None = None


SQUEUE_FORMAT = "%i|%A|%T|%N|%M|%L|%r"
# States after which a job runs no more (squeue -t all shows them until MinJobAge passes).
FINISHED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
            "OUT_OF_MEMORY", "SPECIAL_EXIT", "REVOKED"}


def live(states: Sequence["JobState"]) -> list["JobState"]:
    """The jobs that are pending or running (not finished)."""
    return [s for s in states if s.state not in FINISHED]


def parse_squeue(text: str) -> list[JobState]:
    """Rows of `squeue -h -r -o SQUEUE_FORMAT` (pure)."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 7:
            continue
        out.append(JobState(job=parts[0], job_id=parts[1], state=parts[2], nodes=parts[3], elapsed=parts[4],
                            time_left=parts[5], reason=parts[6]))
    return out


def squeue(job_ids: Sequence[str], env: Mapping[str, str] | None = None,
           timeout_s: float = DEFAULT_TIMEOUT_S) -> list[JobState]:
    """The jobs (every array task on its own row) Slurm still knows, finished ones included."""
    if not job_ids:
        return []
    text = call(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-o", SQUEUE_FORMAT], timeout_s, env)
    return parse_squeue(text)


def parse_scontrol_job(text: str) -> dict[str, str]:
    """`scontrol show job -o J` (one line of Key=Value pairs) as a dict (pure)."""
    out: dict[str, str] = {}
    for token in text.split():
        if "=" in token:
            k, v = token.split("=", 1)
            out.setdefault(k, v)
    return out


def restart_count(job: str, env: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> int | None:
    """How often Slurm requeued a job (scontrol's Restarts=), None if it no longer knows it."""
    try:
        fields = parse_scontrol_job(call(["scontrol", "show", "job", "-o", job], timeout_s, env))
    except SlurmError:
        return None
    try:
        return int(fields.get("Restarts", ""))
    except ValueError:
        return None


def sacct_states(job_ids: Sequence[str], env: Mapping[str, str] | None = None,
                 timeout_s: float = 15.0) -> dict[str, str]:
    """Final states of jobs squeue has forgotten, from accounting; {} where there is no slurmdbd."""
    if not job_ids or not available("sacct"):
        return {}
    try:
        text = call(["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "-o", "JobID,State"], timeout_s, env)
    except SlurmError as e:
        log.info("sacct unavailable: %s", e)
        return {}
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 2 and parts[0]:
            out[parts[0]] = parts[1].split()[0]
    return out


def scancel(job_ids: Sequence[str], signal: str | None = None, batch_only: bool = False,
            states: str | None = None, env: Mapping[str, str] | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    argv = ["scancel"]
    if signal:
        argv.append(f"--signal={signal}")
    if batch_only:
        argv.append("--batch")   # the batch shell only: it forwards one SIGTERM to orze run
    if states:
        argv.append(f"--state={states}")
    call(argv + list(job_ids), timeout_s, env)
