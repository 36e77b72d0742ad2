"""`orze status`: queue, slots per node, counts, best so far, throughput, failures."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from orze.cli.common import RootOption, console, layout_for
from orze.cli.leaderboard import error_summary, verification_text
from orze.status import gather
from orze.store.leaderboard import metric_sign
from orze.vocab import WorkerMode


def slurm_note(node: dict) -> str:
    """' · slurm job 1234_0 (requeued 2×)' for a daemon that runs in a Slurm job (orze/slurm)."""
    sl = node.get("slurm")
    if not isinstance(sl, dict) or not sl.get("job"):
        return ""
    restarts = sl.get("restart_count") or 0
    return f" · slurm job {sl['job']}" + (f" (requeued {restarts}×)" if restarts else "")


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status_cmd(root: Optional[Path] = RootOption,
                   as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """Show the campaign's state: queue depth, running slots, counts, best, throughput."""
        layout = layout_for(root)
        s = gather(layout)
        if as_json:
            console.print_json(json.dumps(s, default=str))
            return
        tp = s["throughput"]
        console.print(
            f"[bold]queue[/] {s['queue']} · inbox {s['inbox']} · [green]done {s['done']}[/] · "
            f"[red]failed {s['failed']}[/] · [magenta]misconfigured {s['misconfigured']}[/] · "
            f"[yellow]pruned {s['pruned']}[/] · "
            f"rejected {s['rejected']} · {tp['recent_per_hour']:.1f} exp/h (last hour), "
            f"{tp['overall_per_hour']:.1f} exp/h overall")
        if s["pruning"]["runs"]:
            p = s["pruning"]
            console.print(f"[bold]pruning[/] {p['runs']} runs stopped early, ~{p['saved_s']:.0f}s of training "
                          f"saved (epochs not run × the run's mean s/epoch); latest: " + ", ".join(
                              f"{x['id']} after epoch {x['epoch']}/{x['epochs']}" for x in p["recent"]))
        if s["best"]:
            b = s["best"]
            ver = verification_text(b)
            better = "higher" if metric_sign(b.get("metric_name")) > 0 else "lower"
            console.print(f"[bold]best[/] {b['id']} {b.get('metric_name')}={b['metric']:.4f} ({better} is better) "
                          f"({json.dumps(b.get('config', {}).get('backbone'))}, "
                          f"{b.get('config', {}).get('temporal_encoder')})"
                          + (f" · verified {ver} checks passed" if ver else ""))
        if s.get("verification"):
            console.print("[bold]verification[/] " + " · ".join(
                f"{level} {n}" for level, n in sorted(s["verification"].items())) + " (done runs by level)")
        for mode, o in s["overhead"].items():
            console.print(f"{mode} workers ({o['runs']} runs): claim → first step "
                          f"{o['claim_to_first_step_s']:.2f}s · overhead per experiment "
                          + (f"{o['overhead_s']:.2f}s" if o["overhead_s"] is not None else "n/a")
                          + (f" · {o['seconds_per_epoch']:.2f}s per epoch" if o["seconds_per_epoch"] else ""))
        now = time.time()
        for n in s["nodes"]:
            mem = " · ".join(f"{d} {m['reserved_mb']:.0f}/{m['capacity_mb']:.0f} MiB reserved"
                             for d, m in (n.get("memory") or {}).items() if m.get("capacity_mb"))
            console.print(f"[bold]node {n['node']}[/] ({'alive' if n['alive'] else 'gone'}, "
                          f"{n.get('mode', 'cold')} workers): utilisation {n.get('utilisation', 0):.1%} · "
                          f"idle with work queued {n.get('waiting_idle_fraction', 0):.1%}"
                          + (f" · {mem}" if mem else "") + slurm_note(n))
            st = n.get("storage") or {}
            if st.get("ok") is False:
                console.print(f"  [bold red]storage failing[/] since "
                              f"{time.strftime('%H:%M:%S', time.localtime(st.get('since') or now))} "
                              f"({st.get('part')}: {st.get('error')}): no new work on this node until the "
                              "directory is writable again (it resumes by itself)", highlight=False)
        if s["nodes"]:
            t = Table(title="slots")
            for c in ("node", "slot", "device", "worker", "running", "for", "jobs", "utilisation",
                      "idle w/ work"):
                t.add_column(c)
            for n in s["nodes"]:
                for sl in n.get("slots", []):
                    w = sl.get("worker") or {}
                    worker = (f"warm pid {w['pid']} ({w.get('jobs', 0)} jobs)" if w.get("pid") else
                              w.get("mode") or sl.get("mode") or str(WorkerMode.COLD))
                    t.add_row(n["node"], str(sl["slot"]), sl["device"], worker, sl["run"] or "idle",
                              f"{now - sl['since']:.0f}s" if sl.get("since") else "",
                              str(sl.get("jobs", "")), f"{sl.get('utilisation', 0):.0%}",
                              f"{sl.get('waiting_idle_s', 0):.1f}s")
            console.print(t)
        if s["agents"]:
            t = Table(title="agents")
            for c in ("agent", "state", "cycles", "proposed", "submitted", "rejected", "calls",
                      "tokens in/out", "cost $", "mean latency"):
                t.add_column(c)
            notes = []
            for name, a in s["agents"].items():
                calls = a.get("calls", 0)
                t.add_row(name, a.get("state") or a.get("last_status") or "",
                          str(a.get("cycles", 0)), str(a.get("proposed", 0)), str(a.get("submitted", 0)),
                          str(a.get("rejected", 0)),
                          f"{calls} ({a.get('failed_calls', 0)} failed)",
                          f"{a.get('tokens_in', 0)}/{a.get('tokens_out', 0)}", f"{a.get('cost_usd', 0.0):.4f}",
                          f"{a.get('latency_s', 0.0) / calls:.2f}s" if calls else "")
                if a.get("why"):
                    notes.append(f"{name}: {a['why']}")
                notes += [f"{name}: {n}" for n in (a.get("health") or {}).get("notices", [])]
            console.print(t)
            for n in notes:
                console.print(f"  {n}", highlight=False, markup=False)
        sw = s.get("sweeps") or {}
        if sw.get("enabled") or sw.get("bases"):
            console.print(f"[bold]sweeps[/] {sw.get('bases', 0)} base(s) expanded · {sw.get('ideas', 0)} "
                          f"idea(s) of at most {sw.get('max_total', '?')} · {sw.get('runs', 0)} sweep run(s) "
                          f"recorded, {sw.get('done', 0)} done")
        print_notify(s.get("notify") or {}, now)
        if s["misconfigured_runs"]:
            t = Table(title="misconfigured runs (off the ranking)")
            t.add_column("id")
            t.add_column("differences")
            for r in s["misconfigured_runs"]:
                t.add_row(r["id"], error_summary(r.get("error")))
            console.print(t)
        if s["failures"]:
            t = Table(title="recent failures")
            t.add_column("id")
            t.add_column("class / message")
            for r in s["failures"]:
                t.add_row(r["id"], error_summary(r.get("error"))[:200])
            console.print(t)


def print_notify(notify: dict, now: float) -> None:
    """Per node: notifications sent, failed (after retries), suppressed (rate limit), dropped; then
    the recent delivery failures with their errors."""
    for node, n in notify.items():
        console.print(f"[bold]notifications[/] (node {node}): sent {n.get('sent', 0)} · "
                      f"[red]failed {n.get('failed', 0)}[/] · suppressed {n.get('suppressed', 0)} · "
                      f"dropped {n.get('dropped', 0)} · pending {n.get('pending', 0)}")
    failures = sorted((f for n in notify.values() for f in (n.get("failures") or []) + (n.get("errors") or [])),
                      key=lambda f: f.get("at") or 0)[-10:]
    if failures:
        t = Table(title="notification failures")
        for c in ("when", "webhook", "event", "tries", "error"):
            t.add_column(c)
        for f in failures:
            t.add_row(f"{now - (f.get('at') or now):.0f}s ago", str(f.get("webhook") or ""),
                      str(f.get("key") or ""), str(f.get("attempts") or ""), str(f.get("error") or "")[:200])
        console.print(t)
