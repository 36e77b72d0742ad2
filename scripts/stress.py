"""Stress test: K daemons (separate processes, own node names) on one research directory, many
ideas with exact duplicates among them, a fast custom worker, random SIGKILLs of daemons (with
restarts) and of workers. At the end every unique idea must be completed exactly once, none lost,
the leaderboard must parse and every duplicate must have been refused.

    python scripts/stress.py [--daemons 4] [--ideas 2000] [--duplicates 400] [--kills 10]
    python scripts/stress.py --worker warm --daemons 3 --ideas 60 --duplicates 12 --kills 3

`--worker warm` runs the built-in trainer on warm per-slot workers (tiny synthetic features, tiny
models) instead of the custom worker, so the kills hit warm processes mid-experiment and daemons
that own warm processes; it also checks that no warm worker outlives its daemon.

Prints the counts and exits non-zero if any check fails. tests/daemon/test_many_nodes.py runs it
at CI size.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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
from orze.store import claims, queue  # noqa: E402
from orze.store.events import read_events  # noqa: E402
from orze.store.inbox import submit_ideas  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402

WORKER = '''
import json, os, random, sys, time, yaml
run = sys.argv[-1]
config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
time.sleep(random.uniform(0.0, 0.3))
effective = dict(config)
seq = {"seq_len": config["seq_len"]}
effective["sequence"] = {"train": seq, "eval": {"val": seq, "test": seq}}
json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
ap = 0.5 + (config["seed"] % 97) / 1000
json.dump({"metric_name": "val_ap", "metric": ap, "test_metric": 0.1,
           "selection": {"split": "val", "best_epoch": 1}, "history": [{"val_ap": ap}], "epochs_run": 1},
          open(os.path.join(run, "metrics.json"), "w"))
'''


# Built-in worker ideas: the smallest model and schedule the default space allows.
TINY = {"backbone": "vjepa2", "temporal_encoder": "retnet", "d_model": 16, "num_layers": 1, "num_heads": 1,
        "batch_size": 128, "seq_len": 4, "epochs": 5, "patience": 1}


def setup(root: Path, worker: str = "custom") -> Layout:
    init_directory(root)
    layout = Layout.at(root)
    (root / "stress_worker.py").write_text(WORKER)
    project = yaml.safe_load(layout.project_config.read_text())
    project["agents"] = []
    project["sweeps"] = {"enabled": False}  # counts must be exactly what was submitted
    if worker == "warm":
        from orze.demo.synth import generate
        generate(layout, n_clips=80, frames=6, seed=0, backbones=("vjepa2",))
        project["worker"] = {"command": None, "mode": "warm", "device": "cpu"}
    else:
        project["worker"] = {"command": [sys.executable, str(root / "stress_worker.py")]}
        project["admission"] = {"require_feature_store": False}   # the worker reads no features
    project["scheduler"].update({"cpu_slots": 2, "poll_s": 0.1, "lease_s": 2.0, "heartbeat_s": 0.3,
                                 "max_attempts": 10, "shutdown_grace_s": 0.5, "threads_per_slot": 1})
    layout.project_config.write_text(yaml.safe_dump(project, sort_keys=False))
    return layout.ensure()


def start(layout: Layout, node: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    logs = layout.root / "daemon-logs"
    logs.mkdir(exist_ok=True)
    with open(logs / f"{node}.log", "ab") as out:   # every incarnation's output, for a post-mortem
        return subprocess.Popen([sys.executable, "-m", "orze", "run", "--until-idle", "--node", node,
                                 "--log-level", "info", "--root", str(layout.root)], env=env,
                                start_new_session=True, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def worker_pids(layout: Layout) -> list[int]:
    pids = []
    for d in layout.exp.iterdir():
        try:
            if (d / "claim").exists():
                pids.append(int((d / "worker.pid").read_text()))
        except (OSError, ValueError):
            pass
    return pids


def stress(root: Path, daemons: int = 4, ideas: int = 2000, duplicates: int = 400, kills: int = 10,
           worker_kills: int | None = None, seed: int = 0, timeout_s: float = 1800,
           worker: str = "custom") -> dict:
    rng = random.Random(seed)
    layout = setup(root, worker)
    unique = list(range(ideas))
    seeds = unique + [rng.choice(unique) for _ in range(duplicates)]
    rng.shuffle(seeds)
    base = TINY if worker == "warm" else {}
    for k in range(0, len(seeds), 25):
        submit_ideas(layout, [{**base, "seed": s} for s in seeds[k:k + 25]], "stress")
    nodes = [f"n{i}" for i in range(daemons)]
    procs = {n: start(layout, n) for n in nodes}
    worker_kills = kills if worker_kills is None else worker_kills
    killed_daemons = killed_workers = 0
    deadline = time.time() + timeout_s
    t0 = time.time()
    while time.time() < deadline and (killed_daemons < kills or killed_workers < worker_kills):
        time.sleep(0.2)
        if killed_workers < worker_kills and rng.random() < 0.5:
            pids = worker_pids(layout)
            if pids:
                try:
                    os.killpg(rng.choice(pids), signal.SIGKILL)
                    killed_workers += 1
                except OSError:
                    pass
                continue
        holding = {c.node for c in (claims.read_claim(d) for d in layout.exp.iterdir()) if c}
        victims = [n for n in nodes if n in holding and procs[n].poll() is None]
        if killed_daemons < kills and victims:
            v = rng.choice(victims)
            os.killpg(procs[v].pid, signal.SIGKILL)  # daemon, no cleanup; its workers live on
            procs[v].wait()
            killed_daemons += 1
            procs[v] = start(layout, v)  # restarted under the same node name
        if all(p.poll() is not None for p in procs.values()):
            break
    for p in procs.values():
        p.wait(timeout=max(1.0, deadline - time.time()))
    drain = start(layout, "drain")  # one clean pass picks up anything the kills left behind
    drain.wait(timeout=600)
    wall = time.time() - t0
    time.sleep(0.5)
    stray = warm_workers_in(layout.root)

    rows = read_rows(layout.leaderboard)
    ids = [r["id"] for r in rows]
    fps = [r["fingerprint"] for r in rows]
    done = sorted(r["config"]["seed"] for r in rows)
    rejected = [json.loads(p.read_text()) for p in layout.rejected.glob("*.json")]
    events = read_events(layout)
    counts = {
        "daemons": daemons, "ideas_submitted": len(seeds), "unique": len(unique),
        "daemon_kills": killed_daemons, "worker_kills": killed_workers,
        "completed": len(rows), "done": sum(r["status"] == "done" for r in rows),
        # the built-in worker (--worker warm) is judged by the pruner (on by default): a pruned run
        # is as final as a done one
        "pruned": sum(r["status"] == "pruned" for r in rows),
        "duplicates_refused": sum(1 for r in rejected if r.get("duplicate_of")),
        "double_runs": (len(ids) - len(set(ids))) + (len(fps) - len(set(fps))),
        "lost": len(set(unique) - set(done)),
        "recovered_runs": sum(e["event"] in ("lease_broken", "requeued") for e in events),
        "queue_left": queue.depth(layout), "claims_left": len(list(layout.exp.glob("*/claim"))),
        "warm_workers_left": len(stray),
        "wall_s": round(wall, 1),
    }
    counts["ok"] = (counts["double_runs"] == 0 and counts["lost"] == 0 and done == unique
                    and counts["duplicates_refused"] == duplicates and counts["queue_left"] == 0
                    and counts["claims_left"] == 0 and counts["done"] + counts["pruned"] == len(unique)
                    and counts["warm_workers_left"] == 0)
    return counts


def warm_workers_in(root: Path) -> list[int]:
    """Live warm worker processes started for this research directory (their cwd is its root)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"orze.worker.warm" in cmd and Path(os.readlink(f"/proc/{pid}/cwd")) == root.resolve():
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(pid))
        except OSError:
            continue
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--daemons", type=int, default=4)
    ap.add_argument("--ideas", type=int, default=2000)
    ap.add_argument("--duplicates", type=int, default=400)
    ap.add_argument("--kills", type=int, default=10, help="daemon SIGKILLs (each restarted); as many worker kills")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", choices=["custom", "warm"], default="custom",
                    help="custom: a fast custom worker (cold); warm: the built-in trainer on warm workers")
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="orze-stress-"))
    counts = stress(root, args.daemons, args.ideas, args.duplicates, args.kills, seed=args.seed,
                    worker=args.worker)
    for k, v in counts.items():
        print(f"{k:>20}: {v}")
    sys.exit(0 if counts["ok"] else 1)


if __name__ == "__main__":
    main()
