"""Soak: the daemon hosting three LLM agents (claude, gemini, openai) against local fault servers,
then `kill -9` of the daemon. Prints what the agents did and how they ended.

    python scripts/soak_agents.py [--minutes 10] [--seed 0] [--keep DIR]

Each agent talks to its own server on 127.0.0.1 speaking its provider's wire protocol (Anthropic
Messages, Gemini generateContent, OpenAI Chat Completions streamed), driven through the real SDKs.
The servers replay a seeded script of faults: 429 with retry-after, a run of 401s, 5xx, hangs
longer than the request timeout, prose, rule-breaking batches (unknown fields, banned regions,
diversity crowding) and good batches of fresh ideas. Auto-sweeps are on; the worker is a trivial
custom command (tests/agents/trivial_worker.py), so the machine is not loaded.

Figures printed: provider calls per agent (requests the servers saw, and ledgered calls with their
attempts); ideas proposed / submitted / rejected per agent with the reasons by kind, checked
proposed = submitted + rejected and against runs/agents/<name>/rejected.jsonl; calls made while an
agent was backing off or paused (should be 0); seconds from the kill to the last provider call and
to each agent's exit (target: under the lease period); inbox files written after the kill; and
that no API key reached runs/. Exits non-zero if a check fails.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from orze.agents import ledger  # noqa: E402
from orze.agents.policies.random_policy import sample_config  # noqa: E402
from orze.cli.init import init_directory  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.space import load_space  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402
from tests.agents.servers import ScriptedServer  # noqa: E402

LEASE_S = 60.0  # AgentHost's default lease period (what `orze run` uses)
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-soak-SECRET-0123456789", "GEMINI_API_KEY": "gm-soak-SECRET-0123456789",
        "OPENAI_API_KEY": "sk-oai-soak-SECRET-0123456789"}
AGENTS = (("claude1", "claude", "anthropic", "claude-sonnet-4-6"),
          ("gemini1", "gemini", "gemini", "gemini-2.5-flash"),
          ("openai1", "openai", "openai", "gpt-4.1-mini"))


def good_batch(rng: random.Random, space, n: int) -> str:
    ideas = []
    for _ in range(n):
        idea = sample_config(space, rng)
        idea = {k: v for k, v in idea.items() if k in ("backbone", "temporal_encoder", "pooling", "loss",
                                                       "learning_rate", "dropout", "batch_size", "seq_len")}
        idea["idea_name"] = f"soak idea {rng.randrange(10**9)}"
        idea["learning_rate"] = f"{idea.get('learning_rate', 1e-3):.3e}"  # a string, as LLMs write it
        ideas.append(idea)
    return "Here are my ideas:\n```yaml\n" + yaml.safe_dump(ideas, sort_keys=False) + "```\n"


def breaking_batch(rng: random.Random, space) -> str:
    kind = rng.choice(["unknown", "banned", "mixed"])
    good = yaml.safe_load(good_batch(rng, space, 2).split("```yaml\n")[1].split("```")[0])
    if kind == "unknown":
        good[0]["lr"] = good[0].pop("learning_rate")
    elif kind == "banned":
        good[0].update(backbone="convnext", temporal_encoder="xlstm")
    else:
        good[1]["colour"] = "red"
    return "```yaml\n" + yaml.safe_dump(good, sort_keys=False) + "```"


def fault_script(seed: int, space, steps: int = 4000) -> list[tuple]:
    rng = random.Random(seed)
    out: list[tuple] = []
    while len(out) < steps:
        if 60 <= len(out) < 64:             # a run of rejected keys: the circuit opens
            out.append(("status", 401))
            continue
        r = rng.random()
        if r < 0.36:
            out.append(("text", good_batch(rng, space, 3)))
        elif r < 0.46:
            out.append(("status", 429, {"retry-after": str(rng.choice([2, 3, 5]))}))
        elif r < 0.54:
            out.append(("status", rng.choice([500, 502, 503])))
        elif r < 0.58:
            out.append(("sleep", 8.0))       # longer than timeout_s: the client gives up
        elif r < 0.72:
            out.append(("text", "I think a recurrent encoder could help; let me know what you think."))
        else:
            out.append(("text", breaking_batch(rng, space)))
    return out


def setup(root: Path, servers: dict[str, ScriptedServer]) -> Layout:
    init_directory(root)
    layout = Layout.at(root)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["scheduler"].update({"cpu_slots": 2, "poll_s": 0.5, "shutdown_grace_s": 1})
    proj["worker"] = {"command": [sys.executable, str(REPO / "tests" / "agents" / "trivial_worker.py")]}
    proj["sweeps"] = {"enabled": True, "top_k": 3, "per_base": 2, "max_total": 20, "interval_s": 5}
    proj["agents"] = []
    for name, policy, proto, model in AGENTS:
        url = servers[name].url + ("/v1" if proto == "openai" else "")
        opts = {"base_url": url, "timeout_s": 3, "retries": 3, "backoff_s": 0.5, "backoff_max_s": 4,
                "max_retry_after_s": 10, "transcripts_keep": 50}
        if policy == "openai":
            opts["stream"] = True
        proj["agents"].append({"name": name, "policy": policy, "model": model, "ideas_per_cycle": 3,
                               "queue_limit": 6, "interval_s": 1, "failure_backoff_s": 4,
                               "failure_backoff_max_s": 30, "pause_after_failures": 4, "pause_s": 45,
                               "options": opts})
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    rules = layout.rules_prompt.read_text().replace(
        "banned: []", "banned:\n  - {backbone: convnext, temporal_encoder: xlstm}")
    layout.rules_prompt.write_text(rules)
    return layout


def agent_pids(layout: Layout) -> dict[str, int]:
    out = {}
    for name, *_ in AGENTS:
        try:
            st = json.loads((layout.agent_dir(name) / "state.json").read_text())
            m = re.match(r"pid (\d+)", st.get("detail", ""))
            if st.get("status") == "running" and m:
                out[name] = int(m.group(1))
        except (OSError, ValueError):
            pass
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def records(layout: Layout, name: str) -> list[dict]:
    path = ledger.ledger_path(layout, name)
    return [json.loads(line) for line in path.open() if line.endswith("\n")] if path.exists() else []


def reason_kind(reason: str) -> str:
    for key, label in (("unknown field", "unknown field"), ("rules.banned", "banned region"),
                       ("min_other", "diversity budget"), ("max_same", "cap per batch"),
                       ("max_ideas_per_cycle", "cap per batch"), ("already run or is queued", "duplicate"),
                       ("same configuration as idea", "duplicate in batch"), ("not submitted", "stopped"),
                       ("left out", "left out"), ("more ideas than", "beyond the batch asked for")):
        if key in reason:
            return label
    return "other: " + reason[:60]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="research directory to use (kept)")
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="orze-soak-"))
    space = load_space(REPO / "configs" / "space.yaml")
    servers = {name: ScriptedServer(proto, fault_script(args.seed * 10 + i, space))
               for i, (name, _, proto, _) in enumerate(AGENTS)}
    for s in servers.values():
        s.__enter__()
    layout = setup(root, servers)
    env = {**os.environ, **KEYS, "PYTHONPATH": str(REPO), "ORZE_THREADS": "1"}
    log = open(root / "daemon.log", "wb")
    t_start = time.time()
    daemon = subprocess.Popen([sys.executable, "-m", "orze", "run", "--root", str(root), "--node", "soak",
                               "--quiet"], env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"soak: {root}, daemon pid {daemon.pid}, {args.minutes:g} min", flush=True)
    end = t_start + args.minutes * 60
    while time.time() < end:
        time.sleep(5)
        if daemon.poll() is not None:
            print(f"daemon exited early with {daemon.returncode}; see {root / 'daemon.log'}")
            return 1
    pids = agent_pids(layout)
    inbox_before = {p.name for p in layout.inbox.glob("*.yaml")}
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    t_kill = time.time()
    exited: dict[str, float | None] = {n: None for n in pids}
    settle = None  # watch a while after the last agent exited, for late calls
    while time.time() < t_kill + LEASE_S + 15 and (settle is None or time.time() < settle):
        for n, pid in pids.items():
            if exited[n] is None and not alive(pid):
                exited[n] = time.time() - t_kill
        if settle is None and all(v is not None for v in exited.values()):
            settle = time.time() + 10
        time.sleep(0.1)
    for s in servers.values():
        s.__exit__(None, None, None)
    ok = True

    print(f"\nran {(t_kill - t_start) / 60:.1f} min, then kill -9 of the daemon")
    rows = read_rows(layout.leaderboard)
    swept = [r for r in rows if r.get("source") == "sweep"]
    print(f"leaderboard: {len(rows)} runs ({sum(r['status'] == 'done' for r in rows)} done), "
          f"{len(swept)} of them auto-sweeps")
    header = ("agent", "calls seen", "ledgered (attempts)", "proposed", "submitted", "rejected",
              "calls while waiting", "last call after kill", "agent exit after kill")
    print("\n" + " | ".join(header))
    for name, *_ in AGENTS:
        recs = records(layout, name)
        t = ledger.totals(layout, name)
        calls = [r for r in recs if r.get("kind") == "call"]
        attempts = sum(int(r.get("attempts") or 1) for r in calls)
        seen = servers[name].requests
        waits = [(r["since"], r["until"]) for r in recs if r.get("kind") == "health" and r.get("until")]
        # a request that started inside a backoff or pause window (the cycle's own end excluded)
        during = sum(1 for q in seen for a, b in waits if a + 0.05 < q["t"] < b - 0.05)
        after = [q["t"] - t_kill for q in seen if q["t"] > t_kill]
        last = max((q["t"] for q in seen), default=t_start) - t_kill
        rej_lines = [json.loads(line) for line in (layout.agent_dir(name) / "rejected.jsonl").open()] \
            if (layout.agent_dir(name) / "rejected.jsonl").exists() else []
        accounted = t.proposed == t.submitted + t.rejected == t.submitted + len(rej_lines)
        every_reason = all(r.get("reasons") for r in rej_lines)
        ok &= accounted and every_reason and during == 0 and last < LEASE_S
        ok &= exited.get(name) is not None and exited[name] < LEASE_S
        print(" | ".join(map(str, (
            name, len(seen), f"{len(calls)} ({attempts})", t.proposed, t.submitted, t.rejected, during,
            f"{last:+.1f}s" + (f" ({len(after)} after)" if after else ""),
            f"{exited.get(name):.1f}s" if exited.get(name) is not None else "still running"))))
        kinds = collections.Counter(reason_kind(r["reasons"][0]) for r in rej_lines if r.get("reasons"))
        stages = collections.Counter(r["stage"] for r in rej_lines)
        states = collections.Counter(r["state"] for r in recs if r.get("kind") == "health")
        print(f"    rejected by reason: {dict(kinds.most_common())}; by stage: {dict(stages)}")
        print(f"    accounted (proposed = submitted + rejected = submitted + rejected.jsonl): {accounted}; "
              f"every rejection has a reason: {every_reason}")
        print(f"    health transitions: {dict(states)}; failed calls {t.failed_calls}; "
              f"tokens {t.tokens_in}/{t.tokens_out}; cost ${t.cost_usd:.4f}")
    late = [p.stat().st_mtime - t_kill for p in layout.inbox.glob("*.yaml") if p.name not in inbox_before]
    leaked = [str(p) for p in layout.runs.rglob("*") if p.is_file()
              and any(v in p.read_text(errors="replace") for v in KEYS.values())]
    ok &= max(late, default=0.0) < LEASE_S and not leaked
    print(f"\ninbox files written after the kill: {len(late)}"
          + (f" (the last {max(late):.1f}s after it, by cycles under way)" if late else "")
          + f"; files under runs/ holding an API key: {len(leaked)}")
    print(f"lease period {LEASE_S:.0f}s; result: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
