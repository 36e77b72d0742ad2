"""`orze slurm submit|status|stop`: the campaign's node daemons as Slurm pilot jobs (docs/slurm.md)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from pydantic import ValidationError
from rich.table import Table

from orze.cli.common import RootOption, console, fail, layout_for
from orze.config import ConfigError, load_project

slurm_app = typer.Typer(help="Run the campaign's node daemons as Slurm jobs (pilot jobs, one per node).",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(slurm_app, name="slurm")


def _load(root):
    layout = layout_for(root)
    try:
        return layout, load_project(layout)
    except ConfigError as e:
        raise fail(str(e))


def _heartbeats(layout) -> list[dict]:
    out = []
    for p in sorted(layout.nodes.glob("*.json")) if layout.nodes.exists() else []:
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out


@slurm_app.command("submit")
def submit_cmd(
    root: Optional[Path] = RootOption,
    nodes: Optional[int] = typer.Option(None, "--nodes", "-N", min=1, help="Nodes (one `orze run` each)."),
    gpus_per_node: Optional[int] = typer.Option(None, "--gpus-per-node", min=0,
                                                help="GPUs per node (--gres=gpu:N or --gpus-per-node=N)."),
    partition: Optional[str] = typer.Option(None, "--partition", "-p"),
    account: Optional[str] = typer.Option(None, "--account", "-A"),
    qos: Optional[str] = typer.Option(None, "--qos"),
    time_limit: Optional[str] = typer.Option(None, "--time", "-t", help="Time limit per job, Slurm syntax."),
    constraint: Optional[str] = typer.Option(None, "--constraint", "-C"),
    topology: Optional[str] = typer.Option(None, "--topology",
                                           help="array (default: one job per node) or srun (one multi-node job)."),
    until_idle: Optional[bool] = typer.Option(None, "--until-idle/--forever",
                                              help="Daemons exit (and jobs end) once there is no work left."),
    job_name: Optional[str] = typer.Option(None, "--job-name", "-J"),
    python: Optional[str] = typer.Option(None, "--python", help="Interpreter on the nodes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write and show the script; submit nothing."),
) -> None:
    """Submit one long-lived `orze run` per node as Slurm job(s); the script goes to runs/slurm/."""
    from orze.slurm import client
    from orze.slurm.records import JobRecord, write_record
    from orze.slurm.script import JobSpec, ScriptError, render_script
    from orze.slurm.settings import SlurmConfig

    layout, project = _load(root)
    if not layout.project_config.exists():
        raise fail(f"{layout.root} is not a research directory ({layout.project_config} is missing; "
                   "`orze init` makes one)")
    overrides = {k: v for k, v in (("nodes", nodes), ("gpus_per_node", gpus_per_node), ("partition", partition),
                                   ("account", account), ("qos", qos), ("time", time_limit),
                                   ("constraint", constraint), ("topology", topology),
                                   ("until_idle", until_idle), ("job_name", job_name), ("python", python))
                 if v is not None}
    try:
        settings = SlurmConfig.model_validate({**project.slurm.model_dump(), **overrides})
    except ValidationError as e:
        errs = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()[:5])
        raise fail(f"slurm settings (configs/orze.yaml slurm: and the options given): {errs}")
    spec = JobSpec(root=layout.root, jobs_dir=layout.slurm_jobs, log_dir=layout.slurm_logs,
                   python=settings.python or sys.executable, settings=settings,
                   shutdown_grace_s=project.scheduler.shutdown_grace_s)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    try:
        text = render_script(spec, generated_at=stamp)
    except ScriptError as e:
        raise fail(str(e))
    for d in (layout.slurm, layout.slurm_jobs, layout.slurm_logs):
        d.mkdir(parents=True, exist_ok=True)
    layout.ensure()
    path = layout.slurm / f"{settings.job_name}-{stamp}-{time.time_ns() % 1_000_000:06d}.sbatch"
    path.write_text(text)
    path.chmod(0o755)
    if dry_run:
        console.print(text, markup=False, highlight=False, soft_wrap=True)
        console.print(f"script written to {path}; not submitted (--dry-run)", highlight=False)
        return
    try:
        job = client.sbatch(str(path))
    except client.SlurmError as e:
        raise fail(f"{e} (script kept at {path})")
    rec = JobRecord(job_id=job, submitted_at=time.time(), script=str(path), topology=settings.topology,
                    nodes=settings.nodes, settings=settings.model_dump())
    write_record(layout, rec)
    pilots = ", ".join(rec.task_keys[:8]) + (" …" if len(rec.task_keys) > 8 else "")
    console.print(f"submitted job {job} ({settings.topology}, {settings.nodes} node(s)): {pilots}; "
                  f"script {path}; logs in {layout.slurm_logs}", highlight=False)


def gather_status(layout) -> tuple[list[dict], str | None]:
    """Rows for `orze slurm status`, and the Slurm error if squeue could not be asked."""
    from orze.slurm import client
    from orze.slurm.records import read_records
    from orze.slurm.report import join

    records = read_records(layout)
    beats = _heartbeats(layout)
    ids = sorted({r.job_id for r in records} | {str(hb["slurm"].get("submitted_id")) for hb in beats
                                                if isinstance(hb.get("slurm"), dict) and hb["slurm"].get("submitted_id")})
    states, problem = [], None
    try:
        states = client.squeue(ids)
    except client.SlurmError as e:
        problem = str(e)
    seen = {s.job for s in states}
    missing = [k for r in records for k in r.task_keys if k not in seen]
    finals = client.sacct_states(missing) if missing and problem is None else {}
    return join(records, states, finals, beats, time.time()), problem


@slurm_app.command("status")
def status_cmd(root: Optional[Path] = RootOption,
               as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The campaign's Slurm jobs next to the node heartbeats in runs/nodes/."""
    layout = layout_for(root)
    rows, problem = gather_status(layout)
    if as_json:
        console.print_json(json.dumps({"pilots": rows, "slurm_error": problem}))
        return
    if problem:
        console.print(f"[yellow]squeue failed:[/] {problem}", highlight=False)
    if not rows:
        console.print("no Slurm jobs recorded in runs/slurm/jobs/ and no node heartbeat from a Slurm job")
        return
    t = Table(title="slurm pilots")
    for c in ("job", "state", "slurm node", "elapsed", "left", "orze node", "daemon", "heartbeat",
              "restarts", "running", "verdict"):
        t.add_column(c)
    for r in rows:
        v = r["verdict"]
        t.add_row(r["job"], r["state"] + (f" ({r['reason']})" if r["reason"] and r["reason"] != "None" else ""),
                  r["slurm_node"], r["elapsed"], r["time_left"], r["orze_node"] or "",
                  r["daemon"] or "", "" if r["heartbeat_age_s"] is None else f"{r['heartbeat_age_s']:.0f}s ago",
                  "" if r["restarts"] is None else str(r["restarts"]),
                  "" if r["running"] is None else str(r["running"]),
                  v if v in ("ok", "ended", "waiting for a node") else f"[bold red]{v}[/]")
    console.print(t)


@slurm_app.command("stop")
def stop_cmd(root: Optional[Path] = RootOption,
             job: Optional[list[str]] = typer.Option(None, "--job", help="Only this submitted job id (repeatable)."),
             wait_s: Optional[float] = typer.Option(None, "--wait", min=0,
                                                    help="Seconds to wait for a graceful end before scancel "
                                                         "(default: the warning signal's lead)."),
             ) -> None:
    """Stop the campaign's jobs: SIGTERM to each batch script (graceful, not requeued), then scancel."""
    from orze.slurm import client
    from orze.slurm.records import mark_stopped, read_records
    from orze.slurm.script import SIGNAL_MARGIN_S

    layout, project = _load(root)
    records = [r for r in read_records(layout) if not job or r.job_id in job]
    if not records:
        raise fail("no recorded Slurm job to stop (runs/slurm/jobs/)" + (f" matching {job}" if job else ""))
    ids = [r.job_id for r in records]
    for i in ids:
        mark_stopped(layout, i)   # first: a script signalled from here on will not requeue itself
    try:
        active = client.live(client.squeue(ids))
        pending = [s.job for s in active if s.state == "PENDING"]
        running = [s.job for s in active if s.state != "PENDING"]
        if pending:
            client.scancel(sorted({p.split("_")[0] if "[" in p else p for p in pending}), states="PENDING")
    except client.SlurmError as e:
        raise fail(str(e))
    for task in running:
        try:
            client.scancel([task], signal="TERM", batch_only=True)
        except client.SlurmError as e:   # ending or being requeued just now: the marker holds it
            console.print(f"[yellow]{task}:[/] {e}", highlight=False)
    lead = project.slurm.signal_lead_s or int(project.scheduler.shutdown_grace_s) + SIGNAL_MARGIN_S
    deadline = time.monotonic() + (lead if wait_s is None else wait_s)
    console.print(f"stopping {', '.join(ids)}: {len(running)} running pilot(s) signalled (SIGTERM to the batch "
                  f"script), {len(pending)} pending cancelled; waiting up to "
                  f"{deadline - time.monotonic():.0f}s", highlight=False)
    left = running
    while left and time.monotonic() < deadline:
        time.sleep(1.0)
        try:
            left = [s.job for s in client.live(client.squeue(ids))]
        except client.SlurmError:
            continue
    if left:
        console.print(f"still running after the grace: {', '.join(left)}; scancel", highlight=False)
        try:
            client.scancel(left)
        except client.SlurmError as e:
            raise fail(str(e))
    console.print("stopped: " + ", ".join(ids), highlight=False)
