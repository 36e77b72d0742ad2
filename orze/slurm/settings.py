"""The `slurm:` section of configs/orze.yaml: how `orze slurm submit` asks Slurm for nodes.

Every key is checked (extra="forbid"), and the values that Slurm would only reject at submission
(or, worse, accept and ignore) are checked here: the time limit's syntax and that it leaves room
for the warning signal, extra #SBATCH lines that would override what Orze's script relies on.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Flags the generated script sets itself because the signal handling, requeueing, logs and the
# node-per-task topology depend on them; an extra line may not change them.
MANAGED_FLAGS = ("--signal", "--requeue", "--no-requeue", "--array", "-a", "--output", "-o", "--error", "-e",
                 "--open-mode", "--chdir", "-D", "--nodes", "-N", "--ntasks", "-n", "--ntasks-per-node",
                 "--job-name", "-J", "--parsable", "--wrap", "--gres", "--gpus-per-node", "--partition", "-p",
                 "--account", "-A", "--qos", "-q", "--time", "-t", "--constraint", "-C")

_TIME = re.compile(r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
                   r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$")


def parse_slurm_time(value: str) -> int | None:
    """Seconds in a Slurm time limit ("30", "MM:SS", "HH:MM:SS", "D-HH[:MM[:SS]]"); None for
    UNLIMITED/INFINITE. Raises ValueError naming the accepted forms."""
    v = value.strip()
    if v.upper() in ("UNLIMITED", "INFINITE"):
        return None
    m = _TIME.match(v)
    if not m:
        raise ValueError(f"{value!r} is not a Slurm time: use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, "
                         "D-HH:MM:SS or UNLIMITED")
    if m.group("d") is not None:
        d, h = int(m.group("d")), int(m.group("dh"))
        mi, s = int(m.group("dm") or 0), int(m.group("ds") or 0)
        return ((d * 24 + h) * 60 + mi) * 60 + s
    a, b, c = m.group("a"), m.group("b"), m.group("c")
    if c is not None:                          # HH:MM:SS
        return (int(a) * 60 + int(b)) * 60 + int(c)
    if b is not None:                          # MM:SS
        return int(a) * 60 + int(b)
    return int(a) * 60                         # minutes


def flag_name(line: str) -> str:
    """The option an extra #SBATCH line sets: '--exclusive' of '--exclusive', '--mem' of '--mem=4G',
    '-w' of '-w node1'."""
    return re.split(r"[=\s]", line.strip(), maxsplit=1)[0]


class SlurmConfig(BaseModel):
    """configs/orze.yaml `slurm:`; the `orze slurm submit` options override these."""

    model_config = ConfigDict(extra="forbid")

    topology: Literal["array", "srun"] = Field(
        default="array", description="array: one job per node (array task), each requeued on its own; "
                                     "srun: one multi-node job with one `orze run` per node")
    nodes: int = Field(default=1, ge=1, description="nodes, one `orze run` each")
    gpus_per_node: int = Field(default=0, ge=0, description="GPUs asked for per node (0: CPU slots)")
    gpu_type: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="gres type, as in --gres=gpu:<type>:<n>")
    gpu_flag: Literal["gres", "gpus-per-node"] = Field(
        default="gres", description="how GPUs are requested: --gres=gpu:N or --gpus-per-node=N")
    cpus_per_task: int | None = Field(default=None, ge=1)
    mem: str | None = Field(default=None, pattern=r"^\d+[KMGT]?$", description="--mem per node, e.g. 64G")
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str | None = Field(default=None, description="time limit per job (Slurm syntax); null: the "
                                                       "partition's default")
    constraint: str | None = None
    job_name: str = Field(default="orze", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    signal_lead_s: int | None = Field(
        default=None, ge=10, le=65535,
        description="seconds before the time limit Slurm sends SIGTERM to the batch script "
                    "(default: scheduler.shutdown_grace_s + 60)")
    requeue: bool = Field(default=True, description="requeue the job after a warning signal that was not "
                                                    "`orze slurm stop` (time limit, preemption)")
    until_idle: bool = Field(default=False, description="each `orze run` exits once inbox, queue and "
                                                        "its slots are empty (the job then ends)")
    python: str | None = Field(default=None, description="interpreter on the nodes (default: the one "
                                                         "running `orze slurm submit`)")
    setup: list[str] = Field(default_factory=list, description="shell lines run before `orze run` "
                                                               "(module load, conda activate)")
    sbatch: list[str] = Field(default_factory=list, description="extra #SBATCH options, e.g. --exclusive")
    orze_args: list[str] = Field(default_factory=list, description="extra `orze run` arguments")

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        if v is not None:
            parse_slurm_time(v)
        return v

    @field_validator("partition", "account", "qos", "constraint")
    @classmethod
    def _one_word(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c.isspace() for c in v) or "'" in v or '"' in v):
            raise ValueError(f"{v!r}: must be one word without quotes")
        return v

    @field_validator("sbatch")
    @classmethod
    def _sbatch(cls, lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            line = line.strip()
            if line.startswith("#SBATCH"):
                line = line[len("#SBATCH"):].strip()
            if not line.startswith("-") or "\n" in line:
                raise ValueError(f"{line!r}: an extra #SBATCH line is one option starting with '-'")
            if flag_name(line) in MANAGED_FLAGS:
                raise ValueError(f"{line!r}: {flag_name(line)} is set by Orze's script (use the slurm: key "
                                 "or `orze slurm submit` option of that name, where there is one)")
            out.append(line)
        return out

    @field_validator("setup", "orze_args")
    @classmethod
    def _single_lines(cls, lines: list[str]) -> list[str]:
        for line in lines:
            if "\n" in line:
                raise ValueError(f"{line!r}: one line per entry")
        return lines

    @field_validator("orze_args")
    @classmethod
    def _orze_args(cls, args: list[str]) -> list[str]:
        for a in args:
            if a.split("=", 1)[0] in ("--node", "--root", "-r", "--until-idle"):
                raise ValueError(f"{a!r}: set by the script (every pilot needs its own node name from Slurm, "
                                 "the root is the submitting directory; use slurm.until_idle)")
        return args
