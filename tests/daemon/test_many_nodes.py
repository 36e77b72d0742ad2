"""Several daemons on one directory, with SIGKILLs and restarts: every unique idea is completed
exactly once, none is lost, duplicates are refused (CI-sized; see scripts/stress.py for more)."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from orze.layout import Layout
from orze.store import claims, queue
from orze.store.inbox import submit_ideas
from orze.store.leaderboard import read_rows
from tests.conftest import orze_env, run_orze
from tests.daemon.test_campaign import custom_dir

pytestmark = pytest.mark.slow


def start(layout: Layout, node: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orze", "run", "--until-idle", "--quiet", "--node", node,
                             "--root", str(layout.root)], env=orze_env({"TEST_WORKER_SLEEP": "0.3"}), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_three_daemons_with_kills_complete_each_idea_exactly_once(tmp_path):
    layout = custom_dir(tmp_path, "honest", lease_s=2.0, heartbeat_s=0.3, poll_s=0.1, max_attempts=5)
    rng = random.Random(0)
    unique = list(range(90))
    seeds = unique + [rng.choice(unique) for _ in range(30)]  # 30 exact duplicates
    rng.shuffle(seeds)
    for k in range(0, len(seeds), 10):
        submit_ideas(layout, [{"seed": s} for s in seeds[k:k + 10]], "stress")
    procs = {n: start(layout, n) for n in ("a", "b", "c")}
    kills = 0
    deadline = time.time() + 120
    while time.time() < deadline and kills < 3:
        time.sleep(0.2)
        # Kill a daemon only while it holds running experiments, so each kill orphans real work.
        holding = {c.node for c in (claims.read_claim(d) for d in layout.exp.iterdir()) if c}
        victims = sorted(n for n in procs if n in holding and procs[n].poll() is None)
        if not victims:
            continue
        victim = rng.choice(victims)
        if procs[victim].poll() is None:
            os.killpg(procs[victim].pid, signal.SIGKILL)  # the daemon and its workers, no cleanup
            procs[victim].wait()
            kills += 1
            procs[victim] = start(layout, victim)  # restarted under the same node name
    for p in procs.values():
        p.wait(timeout=180)
    run_orze("run", "--until-idle", "--quiet", "--node", "drain", root=layout.root, timeout=180)

    rows = read_rows(layout.leaderboard)
    ids = [r["id"] for r in rows]
    fps = [r["fingerprint"] for r in rows]
    done_seeds = sorted(r["config"]["seed"] for r in rows)
    assert len(ids) == len(set(ids)) and len(fps) == len(set(fps)), "a run was recorded twice"
    assert done_seeds == unique, "an idea was lost or run twice"
    assert all(r["status"] == "done" for r in rows)
    assert queue.depth(layout) == 0 and not list(layout.exp.glob("*/claim"))
    assert not list(layout.inbox.iterdir()) and not any(layout.admitting.rglob("*.yaml"))
    duplicates = [p for p in layout.rejected.glob("*.json") if '"duplicate_of": "' in p.read_text()]
    assert len(duplicates) == 30
    assert kills == 3
    from orze.store.events import read_events
    recovered = [e for e in read_events(layout) if e["event"] == "lease_broken"]
    assert recovered, "no killed run was recovered: the kills missed every running experiment"
