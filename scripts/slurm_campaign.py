"""A campaign through `orze slurm submit` on a real local Slurm, with preemptions injected.

Starts a one-node Slurm on localhost (orze/slurm/localcluster.py: munged, slurmctld, slurmd, fake
GPUs; needs root, slurm-wlm and munge), creates a research directory whose worker is the probe
(orze/slurm/probe.py: logs every real start and end, sleeps, writes metrics.json), submits the
ideas and `--pilots` array pilots with one fake GPU each, then injects `--preemptions` alternately:

- warning: `scancel --batch --signal=TERM` (what a time limit's `--signal=B:TERM@lead` or a
  preemption warning delivers): the daemon stops claiming, gives running experiments the grace,
  releases the rest, and the script requeues the job;
- requeue: `scontrol requeue` (an administrator's requeue, or PreemptMode=REQUEUE): Slurm signals
  every process of the job, workers included, and requeues it itself.

When every pilot has ended (they run `--until-idle`), it prints: experiments done, lost and run
twice counted from the probe's log alone (not from Orze's queue or leaderboard), the leaderboard's
own count, each pilot's requeues, and for each injected preemption the seconds from the signal
until the last idea it released was back in the queue (runs/events.jsonl `released`).

    python scripts/slurm_campaign.py [--ideas 48] [--pilots 3] [--slots 2] [--sleep 5]
                                     [--preemptions 4] [--every 10] [--json out.json]
    python scripts/slurm_campaign.py --ideas 36 --pilots 1 --slots 1 --preemptions 0 --time 2 --lead 45

The second form preempts by real time limits only: each pilot gets 2 minutes, the warning comes
at most `lead` seconds before the end (Slurm may send it up to a minute earlier), the pilot
releases and requeues itself, and starts again with a new 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from orze.cli.init import init_directory  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.slurm.localcluster import LocalSlurm, missing_binaries  # noqa: E402
from orze.slurm.probe import audit, default_log, read_log  # noqa: E402
from orze.store import queue  # noqa: E402
from orze.store.events import read_events  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402


def setup(root: Path, sleep_s: float, slots: int, grace_s: float, lead_s: int = 30) -> Layout:
    init_directory(root)
    layout = Layout.at(root)
    project = yaml.safe_load(layout.project_config.read_text())
    project["agents"] = []
    project["worker"] = {"command": [sys.executable, "-m", "orze.slurm.probe", "--sleep", str(sleep_s)]}
    project["scheduler"].update({"cpu_slots": slots, "poll_s": 0.2, "lease_s": 30, "heartbeat_s": 1,
                                 "shutdown_grace_s": grace_s, "max_attempts": 2})
    project["slurm"] = {"signal_lead_s": lead_s, "until_idle": True, "gpus_per_node": 1}
    layout.project_config.write_text(yaml.safe_dump(project, sort_keys=False))
    return layout.ensure()


def sh(cluster, *argv, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), env=cluster.env(), capture_output=True, text=True, timeout=60, check=check)


def states(cluster, job) -> dict[str, str]:
    return {k: v[1] for k, v in tasks(cluster, job).items()}


def tasks(cluster, job) -> dict[str, tuple[str, str]]:
    """Array task (1_0) -> (its unique job id, state)."""
    out = sh(cluster, "squeue", "-h", "-r", "-t", "all", "-j", job, "-o", "%i %A %T").stdout
    return {p[0]: (p[1], p[2]) for p in (line.split() for line in out.splitlines()) if len(p) == 3}


def restarts(cluster, task) -> int:
    out = sh(cluster, "scontrol", "show", "job", "-o", task, check=False).stdout
    return next((int(t.split("=")[1]) for t in out.split() if t.startswith("Restarts=")), -1)


def campaign(base: Path, ideas: int, pilots: int, slots: int, sleep_s: float, preemptions: int,
             every_s: float, grace_s: float, seed: int, timeout_s: float, time_limit: str | None = None,
             lead_s: int = 30) -> dict:
    rng = random.Random(seed)
    cluster = LocalSlurm(base / "slurm", cpus=max(8, pilots * 2), gpus=pilots).start()
    try:
        layout = setup(base / "campaign", sleep_s, slots, grace_s, lead_s)
        env = cluster.env(dict(__import__("os").environ, PYTHONPATH=str(REPO)))

        def orze(*a):
            return subprocess.run([sys.executable, "-m", "orze", *a, "--root", str(layout.root)], env=env,
                                  capture_output=True, text=True, timeout=120, check=True).stdout
        seeds = list(range(ideas))
        (base / "ideas.yaml").write_text(yaml.safe_dump([{"seed": s} for s in seeds]))
        orze("submit", str(base / "ideas.yaml"))
        t_submit = time.time()
        out = orze("slurm", "submit", "--nodes", str(pilots), *(["--time", time_limit] if time_limit else []))
        job = out.split("submitted job ", 1)[1].split()[0]
        print(out.strip(), flush=True)
        injected = []
        next_at = time.time() + every_s
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            ts = tasks(cluster, job)
            st = {k: v[1] for k, v in ts.items()}
            if st and all(s in ("COMPLETED", "CANCELLED", "FAILED") for s in st.values()) and len(st) == pilots:
                break
            running = sorted(t for t, s in st.items() if s == "RUNNING")
            if len(injected) < preemptions and time.time() >= next_at and running and queue.depth(layout) > 0:
                task = rng.choice(running)
                kind = "warning" if len(injected) % 2 == 0 else "requeue"
                t = time.time()
                # As <array>_<task>: the task whose own id is the array's id would otherwise be
                # read as the whole array.
                if kind == "warning":
                    sh(cluster, "scancel", "--batch", "--signal=TERM", task)
                else:
                    sh(cluster, "scontrol", "requeue", task)
                injected.append({"kind": kind, "task": task, "t": t})
                print(f"{t - t_submit:6.1f}s  preemption {len(injected)}: {kind} of {task}", flush=True)
                next_at = t + every_s
            time.sleep(0.5)
        else:
            raise SystemExit(f"campaign did not finish within {timeout_s}s: {states(cluster, job)}")
        wall = time.time() - t_submit
        probe = audit(read_log(default_log(layout.root)), seeds)
        rows = read_rows(layout.leaderboard)
        events = read_events(layout)
        for k, p in enumerate(injected):
            node = f"{cluster.node}-{p['task']}"
            until = min([q["t"] for q in injected[k + 1:] if q["task"] == p["task"]] + [p["t"] + 60])
            rel = [e for e in events if e["event"] == "released" and e.get("node") == node
                   and p["t"] <= e["t"] < until]
            p["released"] = len(rel)
            p["seconds_to_queue"] = round(max(e["t"] for e in rel) - p["t"], 2) if rel else None
            p["t"] = round(p["t"] - t_submit, 1)
        return {
            "ideas": ideas, "pilots": pilots, "time_limit": time_limit, "slots_per_pilot": slots, "sleep_s": sleep_s, "grace_s": grace_s,
            "wall_s": round(wall, 1),
            "done": probe["done"], "lost": probe["lost"], "run_twice": probe["run_twice"],
            "overlapping": probe["overlapping"], "interrupted_starts": probe["interrupted_starts"],
            "leaderboard_rows": len(rows), "leaderboard_unique": len({r["id"] for r in rows}),
            "leaderboard_done": sum(r["status"] == "done" for r in rows),
            "queue_left": queue.depth(layout),
            "requeues": {f"{job}_{i}": restarts(cluster, f"{job}_{i}") for i in range(pilots)},
            "preemptions": injected,
            "probe": probe,
        }
    finally:
        cluster.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ideas", type=int, default=48)
    ap.add_argument("--pilots", type=int, default=3)
    ap.add_argument("--slots", type=int, default=2, help="CPU slots per pilot")
    ap.add_argument("--sleep", type=float, default=5.0, help="seconds per experiment")
    ap.add_argument("--grace", type=float, default=2.0, help="scheduler.shutdown_grace_s")
    ap.add_argument("--preemptions", type=int, default=4)
    ap.add_argument("--every", type=float, default=10.0, help="seconds between preemptions")
    ap.add_argument("--time", default=None, help="a real time limit per pilot (Slurm syntax, e.g. 2): "
                                                 "its warning signal preempts too")
    ap.add_argument("--lead", type=int, default=30, help="slurm.signal_lead_s")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--dir", type=Path, default=None, help="keep everything here (default: a temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    if missing_binaries():
        print(f"needs slurm-wlm and munge: missing {', '.join(missing_binaries())}", file=sys.stderr)
        return 2
    base = a.dir or Path(tempfile.mkdtemp(prefix="orze-slurm-campaign-"))
    base.mkdir(parents=True, exist_ok=True)
    r = campaign(base, a.ideas, a.pilots, a.slots, a.sleep, a.preemptions, a.every, a.grace, a.seed, a.timeout,
                 a.time, a.lead)
    print(f"\n{r['ideas']} experiments on {r['pilots']} array pilots x {r['slots_per_pilot']} slots, "
          f"{r['sleep_s']:g}s each, grace {r['grace_s']:g}s; {len(r['preemptions'])} preemptions injected; "
          f"time limit {r['time_limit'] or 'none'}; "
          f"{r['wall_s']:.0f}s wall")
    print(f"probe log: done {r['done']}, lost {r['lost']}, run twice {r['run_twice']}, on two workers at once "
          f"{r['overlapping']}, interrupted starts (released, then run again) {r['interrupted_starts']}")
    print(f"leaderboard: {r['leaderboard_rows']} rows, {r['leaderboard_unique']} unique, {r['leaderboard_done']} "
          f"done; queue left {r['queue_left']}; requeues per pilot {r['requeues']}")
    for i, p in enumerate(r["preemptions"], 1):
        secs = "n/a (nothing still running after the grace)" if p["seconds_to_queue"] is None else f"{p['seconds_to_queue']:.2f}s"
        print(f"preemption {i} at {p['t']:.1f}s: {p['kind']:8s} {p['task']}: released {p['released']}, "
              f"signal -> back in queue {secs}")
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    ok = (r["lost"] == 0 and r["run_twice"] == 0 and r["overlapping"] == 0 and r["done"] == r["ideas"]
          and r["leaderboard_unique"] == r["ideas"] == r["leaderboard_rows"])
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
