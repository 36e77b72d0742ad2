"""Fault-injection harness: K daemons on one research directory while processes are killed,
frozen and stalled mid-write, and (optionally) the disk fills up. Executions are counted by the
worker itself, in files of its own outside runs/, independently of Orze's bookkeeping.

    python scripts/faults.py --daemons 4 --ideas 1000 --kills 40 --admission-kills 10 \\
        --pauses 3 --stalls 3
    python scripts/faults.py --disk-full --daemons 2 --ideas 150     # on a tmpfs it mounts (root)

Faults, each at a random moment:
- kill:           SIGKILL of a daemon holding claims (restarted under its node name), or of a worker;
- admission kill: SIGKILL of a daemon while its admitting area holds a file it is admitting;
- pause:          SIGSTOP of a daemon holding claims for 1.6 leases (its leases lapse, its workers
                  fence themselves, other nodes take its runs over), then SIGCONT;
- stall:          SIGSTOP of a daemon at the moment it holds the leaderboard or events lock, for 1.6
                  lock periods (a write stalled past the lock: others break the lock), then SIGCONT;
- disk full:      the research directory lives on a small tmpfs, filled to the last block
                  mid-campaign for `--full-s` seconds, then freed.

The worker appends one line per real start and end to executions.jsonl and keeps a marker per
live execution under active/<run id>/, so "two executions of one run directory at once" is seen
by the executions themselves. Checks at the end: lost 0 (every unique idea has exactly one row),
recorded twice 0 (raw lines per id in leaderboard.jsonl, and rows as read), overlapping
executions 0, stuck 0 (nothing left in inbox, admitting, queue, claims), daemons alive through a
full disk. Prints the figures as JSON; exits non-zero if a check fails. tests/faults runs it at
CI size.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
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

WORKER = r'''
import json, os, random, sys, time
run = sys.argv[-1]
rid = os.path.basename(run.rstrip("/"))
harness = os.environ["FAULTS_DIR"]
def log(event):
    line = json.dumps({"id": rid, "pid": os.getpid(), "event": event, "t": time.time()}) + "\n"
    fd = os.open(os.path.join(harness, "executions.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, line.encode()); os.close(fd)
active = os.path.join(harness, "active", rid)
os.makedirs(active, exist_ok=True)
def alive(pid):
    try:  # a zombie (killed, not yet reaped) is not an execution
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False
others = [int(n) for n in os.listdir(active) if n.isdigit() and alive(int(n))]
open(os.path.join(active, str(os.getpid())), "w").close()
log("start")
if others:
    log("overlap")
import yaml
config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
for _ in range(random.randint(2, 8)):
    time.sleep(0.1)
    with open(os.path.join(run, "train.log"), "a") as f:
        f.write("step\n")
effective = dict(config)
seq = {"seq_len": config["seq_len"]}
effective["sequence"] = {"train": seq, "eval": {"val": seq, "test": seq}}
json.dump(effective, open(os.path.join(run, "effective_config.json"), "w"))
ap = 0.5 + (config["seed"] % 97) / 1000
json.dump({"metric_name": "val_ap", "metric": ap, "test_metric": 0.1,
           "selection": {"split": "val", "best_epoch": 1}, "history": [{"val_ap": ap}], "epochs_run": 1},
          open(os.path.join(run, "metrics.json"), "w"))
os.unlink(os.path.join(active, str(os.getpid())))
log("end")
'''


class Campaign:
    def __init__(self, root: Path, harness: Path, daemons: int, lease_s: float, seed: int):
        self.root, self.harness, self.lease_s = root, harness, lease_s
        self.rng = random.Random(seed)
        harness.mkdir(parents=True, exist_ok=True)
        (harness / "worker.py").write_text(WORKER)
        init_directory(root)
        self.layout = Layout.at(root)
        project = yaml.safe_load(self.layout.project_config.read_text())
        project["agents"] = []
        project["sweeps"] = {"enabled": False}
        project["notify"] = {"webhooks": []}
        project["admission"] = {"near_duplicates": "off", "require_feature_store": False}  # reads none
        project["worker"] = {"command": [sys.executable, str(harness / "worker.py")]}
        project["scheduler"].update({"cpu_slots": 2, "poll_s": 0.1, "lease_s": lease_s,
                                     "heartbeat_s": lease_s / 8, "max_attempts": 50,
                                     "shutdown_grace_s": 0.5, "threads_per_slot": 1})
        self.layout.project_config.write_text(yaml.safe_dump(project, sort_keys=False))
        self.layout = self.layout.with_lease(lease_s).ensure()
        self.nodes = [f"n{i}" for i in range(daemons)]
        self.procs: dict[str, subprocess.Popen] = {}
        self.env = dict(os.environ, FAULTS_DIR=str(harness),
                        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    # --- processes -----------------------------------------------------------------------------
    def start(self, node: str) -> None:
        logs = self.harness / "daemon-logs"
        logs.mkdir(exist_ok=True)
        with open(logs / f"{node}.log", "ab") as out:
            self.procs[node] = subprocess.Popen(
                [sys.executable, "-m", "orze", "run", "--node", node, "--log-level", "info",
                 "--root", str(self.root)], env=self.env, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=out, stderr=out)

    def kill(self, node: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.procs[node].pid, signal.SIGKILL)   # the daemon only: its workers live on
        self.procs[node].wait()

    def kill_and_restart(self, node: str, max_gap_s: float) -> None:
        self.kill(node)
        time.sleep(self.rng.uniform(0, max_gap_s))
        self.start(node)   # under the same node name

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def holding(self) -> set[str]:
        out = set()
        for d in self.layout.exp.iterdir():
            c = claims.read_claim(d)
            if c is not None:
                out.add(c.node)
        return out

    def worker_pgids(self) -> list[int]:
        pids = []
        for d in self.layout.exp.iterdir():
            try:
                if (d / "claim").exists():
                    pids.append(int((d / "worker.pid").read_text()))
            except (OSError, ValueError):
                pass
        return pids

    def lock_holder(self) -> str | None:
        """The node whose daemon holds the leaderboard or events lock right now."""
        pids = {p.pid: n for n, p in self.procs.items() if p.poll() is None}
        for lock in (self.layout.leaderboard_lock, self.layout.events_lock):
            try:
                owner = json.loads(lock.read_text()).get("owner", "")
            except (OSError, ValueError):
                continue
            with contextlib.suppress(ValueError, IndexError):
                pid = int(owner.split(":")[1])
                if pid in pids:
                    return pids[pid]
        return None

    def admitting(self) -> set[str]:
        out = set()
        for node in self.nodes:
            d = self.layout.admitting_for(node)
            with contextlib.suppress(FileNotFoundError):
                if any(p.suffix == ".yaml" for p in d.iterdir()):
                    out.add(node)
        return out


def run(root: Path, harness: Path, daemons: int = 4, ideas: int = 1000, duplicates: int = 100,
        kills: int = 40, admission_kills: int = 10, worker_kills: int = 20, pauses: int = 3,
        stalls: int = 3, lease_s: float = 4.0, seed: int = 0, timeout_s: float = 1800,
        disk_full: bool = False, full_s: float = 8.0) -> dict:
    c = Campaign(root, harness, daemons, lease_s, seed)
    rng = c.rng
    unique = list(range(ideas))
    seeds = unique + [rng.choice(unique) for _ in range(duplicates)]
    rng.shuffle(seeds)
    size = max(10, min(40, len(seeds) // max(1, 2 * admission_kills)))
    batches = [seeds[k:k + size] for k in range(0, len(seeds), size)]
    submit_ideas(c.layout, [{"seed": s} for s in batches.pop(0)], "faults")
    for n in c.nodes:
        c.start(n)
    done = Counter()
    t0 = time.time()
    deadline = t0 + timeout_s
    filled_at = None

    def want(kind: str, target: int) -> bool:
        return done[kind] < target

    while time.time() < deadline:
        if batches:
            # Submit the next file and try to catch a daemon while it admits it.
            submit_ideas(c.layout, [{"seed": s} for s in batches.pop(0)], "faults")
            if want("admission_kill", admission_kills):
                t_end = time.time() + 2.0
                while time.time() < t_end:
                    victims = [n for n in c.admitting() if n in c.alive()]
                    if victims:
                        c.kill_and_restart(rng.choice(victims), 0.3)
                        done["admission_kill"] += 1
                        break
                    time.sleep(0.002)
        # Faults still owed, weighted by how many: the campaign must not end before they are dealt.
        owed = {"kill": kills - admission_kills - done["kill"], "worker": worker_kills - done["worker_kill"],
                "pause": pauses - done["pause"], "stall": stalls - done["stall"]}
        choices = [a for a, n in owed.items() for _ in range(max(0, n))]
        action = rng.choice(choices) if choices and rng.random() < 0.7 else "wait"
        if action == "kill" and want("kill", kills - admission_kills):
            victims = [n for n in c.alive() if n in c.holding()]
            if victims:
                c.kill_and_restart(rng.choice(victims), 0.5)
                done["kill"] += 1
        elif action == "worker" and want("worker_kill", worker_kills):
            pgids = c.worker_pgids()
            if pgids:
                with contextlib.suppress(OSError):
                    os.killpg(rng.choice(pgids), signal.SIGKILL)
                    done["worker_kill"] += 1
        elif action == "pause" and want("pause", pauses):
            victims = [n for n in c.alive() if n in c.holding()]
            if victims:
                v = rng.choice(victims)
                os.kill(c.procs[v].pid, signal.SIGSTOP)
                time.sleep(1.6 * lease_s)
                os.kill(c.procs[v].pid, signal.SIGCONT)
                done["pause"] += 1
        elif action == "stall" and want("stall", stalls):
            t_end = time.time() + 5.0
            while time.time() < t_end:
                v = c.lock_holder()
                if v is not None:
                    os.kill(c.procs[v].pid, signal.SIGSTOP)   # frozen inside the lock
                    time.sleep(1.6 * lease_s)
                    os.kill(c.procs[v].pid, signal.SIGCONT)
                    done["stall"] += 1
                    break
                time.sleep(0.0005)
        else:
            time.sleep(0.2)
        if disk_full and filled_at is None and time.time() - t0 > 3:
            filled_at = fill(root)
            done["disk_full_s"] = full_s
            time.sleep(full_s)
            done["alive_while_full"] = len(c.alive())
            (root / "filler").unlink()
        for n in c.nodes:   # a daemon that died by itself is a failure; restart it but count it
            if c.procs[n].poll() is not None:
                done["unexpected_exits"] += 1
                c.start(n)
        finished = not batches and (not disk_full or filled_at is not None) and all(done[k] >= t for k, t in (
            ("kill", kills - admission_kills), ("admission_kill", admission_kills), ("pause", pauses),
            ("stall", stalls), ("worker_kill", worker_kills)))
        if finished or (not batches and (not disk_full or filled_at is not None)
                        and len({r["id"] for r in read_rows(c.layout.leaderboard)}) >= ideas):
            break
    # Chaos over: let the campaign finish, then stop the daemons cleanly.
    while time.time() < deadline:
        rows = read_rows(c.layout.leaderboard)
        if len(rows) >= ideas and queue.depth(c.layout) == 0:
            break
        for n in c.nodes:
            if c.procs[n].poll() is not None:
                done["unexpected_exits"] += 1
                c.start(n)
        time.sleep(0.5)
    for p in c.procs.values():
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
    for p in c.procs.values():
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    wall = time.time() - t0
    return check(c, unique, seeds, duplicates, dict(done), wall)


def fill(root: Path) -> float:
    """Fill the filesystem of `root` to the last block."""
    with open(root / "filler", "wb") as f:
        chunk = b"\0" * (1 << 16)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            while True:
                os.write(f.fileno(), b"\0" * 512)
    return time.time()


def check(c: Campaign, unique, seeds, duplicates, done: dict, wall: float) -> dict:
    layout = c.layout
    raw = Counter()
    with open(layout.leaderboard, "rb") as f:
        for line in f:
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                raw[row["id"]] += 1
    rows = read_rows(layout.leaderboard)
    by_seed = Counter(r["config"]["seed"] for r in rows)
    execs = [json.loads(line) for line in (c.harness / "executions.jsonl").read_text().splitlines() if line]
    starts = Counter(e["id"] for e in execs if e["event"] == "start")
    events = read_events(layout)
    left = {
        "inbox": len([p for p in layout.inbox.iterdir() if not p.name.startswith(".")]),
        "admitting": sum(1 for p in layout.admitting.rglob("*.yaml")),
        "queue": queue.depth(layout),
        "claims": len(list(layout.exp.glob("*/claim"))),
        "orphaned": sum(1 for d in layout.exp.iterdir() if (d / "idea.json").exists()
                        and not (d / "claim").exists() and not (d / "result.json").exists()),
    }
    rejected = [json.loads(p.read_text()) for p in layout.rejected.glob("*.json")]
    out = {
        "daemons": len(c.nodes), "ideas": len(unique), "duplicates_submitted": duplicates,
        "faults": done,
        "rows": len(rows), "done": sum(r["status"] == "done" for r in rows),
        "lost": sum(1 for s in unique if by_seed[s] == 0),
        "recorded_twice": sum(1 for s in unique if by_seed[s] > 1),
        "second_lines_in_file": sum(n - 1 for n in raw.values() if n > 1),
        "duplicates_refused": sum(1 for r in rejected if r.get("duplicate_of")),
        "executions": sum(starts.values()),
        "runs_executed_more_than_once": sum(1 for n in starts.values() if n > 1),
        "overlapping_executions": sum(1 for e in execs if e["event"] == "overlap"),
        "stuck": left,
        "events": len(events),
        "storage_failing_events": sum(e["event"] == "storage_failing" for e in events),
        "storage_recovered_events": sum(e["event"] == "storage_recovered" for e in events),
        "wall_s": round(wall, 1),
    }
    out["ok"] = (out["lost"] == 0 and out["recorded_twice"] == 0 and out["overlapping_executions"] == 0
                 and not any(left.values()) and out["duplicates_refused"] == duplicates
                 and done.get("unexpected_exits", 0) == 0 and out["done"] == len(unique)
                 and (not done.get("disk_full_s") or out["storage_failing_events"] > 0))
    return out


@contextlib.contextmanager
def tmpfs(size_mb: int):
    d = Path(tempfile.mkdtemp(prefix="orze-faults-fs-"))
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(d)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"cannot mount a tmpfs for --disk-full ({r.stderr.strip() or 'mount failed'}); "
                         "run as root, or without --disk-full")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemons", type=int, default=4)
    ap.add_argument("--ideas", type=int, default=1000)
    ap.add_argument("--duplicates", type=int, default=100)
    ap.add_argument("--kills", type=int, default=40, help="daemon kills in all, admission kills included")
    ap.add_argument("--admission-kills", type=int, default=10)
    ap.add_argument("--worker-kills", type=int, default=20)
    ap.add_argument("--pauses", type=int, default=3)
    ap.add_argument("--stalls", type=int, default=3)
    ap.add_argument("--lease", type=float, default=4.0, help="scheduler.lease_s (also the lock period)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--disk-full", action="store_true", help="on a tmpfs, filled mid-campaign (root)")
    ap.add_argument("--tmpfs-mb", type=int, default=64)
    ap.add_argument("--full-s", type=float, default=8.0)
    ap.add_argument("--root", type=Path, default=None, help="keep the campaign here (default: a temp dir)")
    a = ap.parse_args()
    kw = dict(daemons=a.daemons, ideas=a.ideas, duplicates=a.duplicates, kills=a.kills,
              admission_kills=a.admission_kills, worker_kills=a.worker_kills, pauses=a.pauses,
              stalls=a.stalls, lease_s=a.lease, seed=a.seed, timeout_s=a.timeout, disk_full=a.disk_full,
              full_s=a.full_s)
    if a.disk_full:
        with tmpfs(a.tmpfs_mb) as fs:
            out = run(fs / "campaign", fs.parent / (fs.name + "-harness"), **kw)
    else:
        base = a.root or Path(tempfile.mkdtemp(prefix="orze-faults-"))
        out = run(base / "campaign", base / "harness", **kw)
    print(json.dumps(out, indent=2))
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
