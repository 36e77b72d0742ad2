"""The sbatch script for a campaign's pilot jobs: a pure function of typed settings.

One long-lived `orze run` per allocated node (warm workers are the point: no job per experiment).
Topologies:
- array (the default): an array of one-node jobs. Each task is scheduled as soon as a node is free
  (no waiting for N nodes at once), and a time limit, preemption or node failure requeues only
  that task while the others keep their warm workers. Orze nodes coordinate only through files,
  so nothing is gained by gang-scheduling them.
- srun: one multi-node job whose single `srun` step runs one `orze run` per node (for sites that
  allocate blocks of nodes, or count array tasks against a job limit). A requeue restarts all nodes.

Signals. The job asks for `--signal=B:TERM@<lead>`: Slurm sends SIGTERM to the batch shell alone
`lead` seconds before the time limit (or on `scancel -b -s TERM`). The shell does not `exec`:
bash defers a trap while a foreground child runs and a signal to the shell alone would never
reach `orze run`, so `orze run` runs in the background and the trap forwards exactly one SIGTERM to
it (a first SIGTERM is a graceful stop: no new claims, `shutdown_grace_s` for running experiments,
the rest released to the queue; a second would release at once). The handler first ignores TERM,
because requeueing itself makes Slurm signal the script again. After `orze run` exits, the job
requeues itself unless `orze slurm stop` left its stop marker (runs/slurm/jobs/<id>.stop).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from orze.slurm.settings import SlurmConfig, parse_slurm_time

SIGNAL_MARGIN_S = 60   # lead beyond the daemon's grace: releasing, exiting, requeueing


class ScriptError(ValueError):
    """The settings cannot make a working job (the message names the setting)."""


@dataclass(frozen=True)
class JobSpec:
    root: Path                      # the research directory (shared by all nodes)
    jobs_dir: Path                  # runs/slurm/jobs: stop markers
    log_dir: Path                   # runs/slurm/logs
    python: str                     # interpreter on the nodes
    settings: SlurmConfig
    shutdown_grace_s: float         # scheduler.shutdown_grace_s: what `orze run` gives experiments
    orze_args: list[str] = field(default_factory=list)

    @property
    def signal_lead_s(self) -> int:
        s = self.settings
        return s.signal_lead_s if s.signal_lead_s is not None else int(self.shutdown_grace_s) + SIGNAL_MARGIN_S


def check_spec(spec: JobSpec) -> None:
    """Refuse settings under which Orze's signal handling could not work."""
    s = spec.settings
    if spec.signal_lead_s <= spec.shutdown_grace_s:
        raise ScriptError(f"slurm.signal_lead_s ({spec.signal_lead_s}) must exceed scheduler.shutdown_grace_s "
                          f"({spec.shutdown_grace_s:g}): the daemon needs the grace plus time to release and exit")
    if s.time is not None:
        limit = parse_slurm_time(s.time)
        if limit is not None and limit <= 2 * spec.signal_lead_s:
            raise ScriptError(f"slurm.time {s.time!r} ({limit}s) leaves no working time before the warning "
                              f"signal {spec.signal_lead_s}s ahead of the limit: use more than "
                              f"{2 * spec.signal_lead_s}s")
    if s.gpu_type and not s.gpus_per_node:
        raise ScriptError("slurm.gpu_type is set but slurm.gpus_per_node is 0")


def _q(value: str) -> str:
    return shlex.quote(str(value))


def sbatch_options(spec: JobSpec) -> list[str]:
    """The #SBATCH options, in order (each setting maps to one Slurm flag)."""
    s = spec.settings
    opts = [f"--job-name={s.job_name}"]
    if s.topology == "array":
        opts += [f"--array=0-{s.nodes - 1}", "--nodes=1", "--ntasks=1"]
        out = spec.log_dir / "%A_%a.out"
    else:
        opts += [f"--nodes={s.nodes}", f"--ntasks={s.nodes}", "--ntasks-per-node=1"]
        out = spec.log_dir / "%j.out"
    if s.gpus_per_node:
        gpu = f"gpu:{s.gpu_type}:{s.gpus_per_node}" if s.gpu_type else f"gpu:{s.gpus_per_node}"
        if s.gpu_flag == "gres":
            opts.append(f"--gres={gpu}")
        else:
            opts.append(f"--gpus-per-node={gpu[4:]}")
    for flag, value in (("--cpus-per-task", s.cpus_per_task), ("--mem", s.mem), ("--partition", s.partition),
                        ("--account", s.account), ("--qos", s.qos), ("--time", s.time),
                        ("--constraint", s.constraint)):
        if value is not None:
            opts.append(f"{flag}={value}")
    opts.append(f"--signal=B:TERM@{spec.signal_lead_s}")
    opts.append("--requeue" if s.requeue else "--no-requeue")
    opts += ["--open-mode=append", f"--output={out}", f"--chdir={spec.root}"]
    opts += list(s.sbatch)
    return opts


def orze_command(spec: JobSpec) -> list[str]:
    s = spec.settings
    argv = [spec.python, "-m", "orze", "run", "--root", str(spec.root)]
    if s.until_idle:
        argv.append("--until-idle")
    return argv + list(s.orze_args) + list(spec.orze_args)


def render_script(spec: JobSpec, generated_at: str = "") -> str:
    check_spec(spec)
    s = spec.settings
    cmd = " ".join(_q(a) for a in orze_command(spec))
    if s.topology == "srun":
        # One task per node; srun forwards the SIGTERM it gets to every task. --kill-on-bad-exit=0:
        # one node's daemon exiting (until idle) must not kill the others.
        cmd = f"srun --nodes={s.nodes} --ntasks={s.nodes} --ntasks-per-node=1 --kill-on-bad-exit=0 {cmd}"
    requeue = "1" if s.requeue else "0"
    if s.topology == "srun":
        # srun answers a SIGTERM of its own by killing the step: signal the step's tasks instead.
        forward = 'scancel --signal=TERM "${SLURM_JOB_ID}.0" || kill -TERM "$child" 2>/dev/null'
    else:
        forward = 'kill -TERM "$child" 2>/dev/null'

    lines = ["#!/bin/bash",
             f"# Generated by `orze slurm submit`{' at ' + generated_at if generated_at else ''}: one "
             f"long-lived `orze run` per node ({s.topology} topology).",
             "# Regenerate it rather than edit it; configs/orze.yaml `slurm:` holds the settings."]
    lines += [f"#SBATCH {o}" for o in sbatch_options(spec)]
    lines += [
        "",
        "set -u",
        f"export ORZE_ROOT={_q(spec.root)}",
        "export CUDA_DEVICE_ORDER=PCI_BUS_ID   # CUDA numbers GPUs as NVML and Slurm's gres do",
        "export PYTHONUNBUFFERED=1",
        *s.setup,
        'JOB="${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}"',
        "# This pilot as Slurm names it: an array's first-scheduled task has SLURM_JOB_ID equal to the",
        "# array's id, which scontrol reads as the whole array, so an array task is always <array>_<task>.",
        'SELF="$SLURM_JOB_ID"',
        'if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then SELF="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"; fi',
        f'STOP={_q(spec.jobs_dir)}/"$JOB.stop"',
        f"REQUEUE={requeue}",
        'stamp() { date -u +%Y-%m-%dT%H:%M:%SZ; }',
        'echo "orze-slurm: job $SELF (id $SLURM_JOB_ID) on $(hostname) restart ${SLURM_RESTART_COUNT:-0} '
        'gpus ${CUDA_VISIBLE_DEVICES:-none} at $(stamp)"',
        'if [ -e "$STOP" ]; then echo "orze-slurm: $STOP exists (orze slurm stop): not starting"; exit 0; fi',
        "",
        "term=0",
        "child=",
        "on_term() {",
        "  trap '' TERM   # requeueing ourselves makes Slurm signal this script again",
        "  term=1",
        '  echo "orze-slurm: SIGTERM at $(stamp), forwarding to orze run (pid ${child:-not started})"',
        f'  if [ -n "$child" ]; then {forward}; fi',
        "}",
        "trap on_term TERM",
        "",
        f"{cmd} &",
        "child=$!",
        f'if [ "$term" = 1 ]; then sleep 1; {forward}; fi   # signalled before $! was known',
        "rc=0",
        'wait "$child" || rc=$?',
        "# wait returns early when the trap runs; keep waiting for orze run's own exit status",
        'while kill -0 "$child" 2>/dev/null; do rc=0; wait "$child" || rc=$?; done',
        'echo "orze-slurm: orze run exited with $rc at $(stamp)"',
        'if [ "$term" = 1 ] && [ "$REQUEUE" = 1 ] && [ ! -e "$STOP" ]; then',
        '  echo "orze-slurm: requeueing job $SELF (time limit or preemption, not orze slurm stop)"',
        '  scontrol requeue "$SELF" || echo "orze-slurm: scontrol requeue $SELF failed (Slurm may be requeueing it)"',
        "fi",
        'exit "$rc"',
        "",
    ]
    return "\n".join(lines)
