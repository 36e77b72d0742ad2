"""Experiments per hour through the real daemon: cold against warm workers, 1..S slots.

For every (worker mode, slot count) it makes a research directory with the same synthetic
features (reference scale by default: 1,480 clips, 1,184 of them for training, T = 20, D = 1024,
one backbone), submits the same fixed mix of N configurations, runs `orze run --until-idle` as a
subprocess, and reads the result rows and the node heartbeat back. Printed per run:

  wall           `orze run` from start to exit (includes starting the warm workers, once per node)
  exp/h          finished experiments per hour over the campaign (first claim to last result)
  exp/slot-h     the same per slot (per GPU-hour with one slot per GPU)
  slot util      share of slot time between a claim and its recorded result
  train share    share of slot time inside training epochs (what a GPU is for)
  idle w/ work   share of slot time a slot sat free while the queue had work (scheduler latency)
  claim→step     seconds from claim to the first optimiser step (mean; median: a warm worker's
                 first job also waits for its imports, later ones do not)
  overhead       mean seconds per experiment not spent in training epochs

Usage:
  python scripts/bench_throughput.py                       # CPU, cold and warm, 1 and 2 slots
  python scripts/bench_throughput.py --device cuda --slots 1,2,4,8 --experiments 64
  python scripts/bench_throughput.py --scale small --experiments 8   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from orze.cli.init import init_directory  # noqa: E402
from orze.demo.synth import generate  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402

SCALES = {"reference": 1480, "small": 300}   # clips (80% train): 1,184 train clips = the reference
REFERENCE_EXP_PER_GPU_HOUR = 3.2             # the reference campaign: 3 to 10 minutes per experiment

# The fixed configuration mix: four encoder families, two poolings, a fixed budget of epochs.
MIX = [
    {"temporal_encoder": "transformer", "pooling": "attention"},
    {"temporal_encoder": "retnet", "pooling": "mean"},
    {"temporal_encoder": "xlstm", "pooling": "attention"},
    {"temporal_encoder": "zipformer", "pooling": "mean"},
]
BASE = {"backbone": "vjepa2", "d_model": 64, "num_layers": 2, "num_heads": 4, "batch_size": 32,
        "seq_len": 20, "epochs": 5, "patience": 5, "learning_rate": 1e-3}


def make_features(root: Path, clips: int) -> Path:
    layout = Layout.at(root)
    init_directory(root)
    t0 = time.time()
    generate(layout, n_clips=clips, frames=20, seed=0, backbones=("vjepa2",))
    print(f"features: {clips} clips x 20 frames x 1024 (vjepa2, synthetic) in {time.time() - t0:.1f}s")
    return layout.features


def research_dir(root: Path, features: Path, mode: str, slots: int, device: str, threads: int) -> Layout:
    init_directory(root)
    layout = Layout.at(root)
    shutil.rmtree(layout.features, ignore_errors=True)
    os.symlink(features, layout.features)
    space = yaml.safe_load(layout.space_config.read_text())
    enc = space["dimensions"]["temporal_encoder"]
    if "transformer" not in enc["choices"]:
        enc["choices"].append("transformer")
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["agents"] = []
    proj["sweeps"] = {"enabled": False}  # a fixed mix: no auto-sweep variants
    proj["pruning"] = {"enabled": False}  # and every run its whole schedule
    sched = proj["scheduler"]
    sched.update({"poll_s": 1.0, "threads_per_slot": threads})
    if device == "cuda":
        sched.update({"gpus": "auto", "slots_per_gpu": slots})
    else:
        sched.update({"gpus": "none", "cpu_slots": slots})
    proj["worker"] = {"command": None, "mode": mode, "device": "auto" if device == "cuda" else "cpu"}
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    return layout


def run_one(work: Path, features: Path, mode: str, slots: int, n: int, device: str, threads: int) -> dict:
    layout = research_dir(work / f"{mode}-{slots}", features, mode, slots, device, threads)
    ideas = [{**BASE, **MIX[i % len(MIX)], "seed": i} for i in range(n)]
    ideas_file = work / f"ideas-{mode}-{slots}.yaml"
    ideas_file.write_text(yaml.safe_dump(ideas))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-m", "orze", "submit", str(ideas_file), "--root", str(layout.root)],
                   check=True, env=env, capture_output=True)
    t0 = time.time()
    subprocess.run([sys.executable, "-m", "orze", "run", "--until-idle", "--quiet", "--node", "bench",
                    "--root", str(layout.root)], check=True, env=env)
    wall = time.time() - t0
    rows = read_rows(layout.leaderboard)
    done = [r for r in rows if r["status"] == "done"]
    if len(done) != n:
        raise SystemExit(f"{mode}/{slots}: {len(done)} of {n} done: "
                         f"{[r.get('error') for r in rows if r['status'] != 'done'][:3]}")
    span = max(r["finished_at"] for r in rows) - min(r["started_at"] for r in rows)
    t = [r["timings"] for r in rows]
    node = json.loads((layout.nodes / "bench.json").read_text())
    slot_time = slots * span
    return {
        "mode": mode, "slots": slots, "experiments": n, "wall_s": wall, "span_s": span,
        "exp_per_hour": n / span * 3600, "exp_per_slot_hour": n / slot_time * 3600,
        "slot_utilisation": sum(r["duration_s"] for r in rows) / slot_time,
        "train_share": sum(x["train_s"] for x in t) / slot_time,
        "waiting_idle_fraction": node.get("waiting_idle_fraction"),
        "claim_to_first_step_s": sum(x["claim_to_first_step_s"] for x in t) / n,
        "claim_to_first_step_median_s": statistics.median(x["claim_to_first_step_s"] for x in t),
        "overhead_s": sum(x["overhead_s"] for x in t) / n,
        "seconds_per_epoch": sum(x["seconds_per_epoch"] for x in t) / n,
        "best_val_ap": max(r["metric"] for r in done),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", "-n", type=int, default=8)
    ap.add_argument("--slots", default="1,2", help="comma-separated slot counts (per GPU with --device cuda)")
    ap.add_argument("--modes", default="cold,warm")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--scale", choices=sorted(SCALES), default="reference")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per CPU slot")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a temp dir, removed)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="orze-bench-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    features = make_features(work / "features-src", SCALES[args.scale])
    results = []
    for slots in [int(s) for s in args.slots.split(",")]:
        for mode in args.modes.split(","):
            print(f"running {args.experiments} experiments: {mode} workers, {slots} slot(s), {args.device} ...",
                  flush=True)
            results.append(run_one(work, features, mode, slots, args.experiments, args.device, args.threads))
    table = Table(title=f"throughput: {args.experiments} experiments per run, {args.scale} scale, {args.device}, "
                        f"mix of {len(MIX)} configs x {BASE['epochs']} epochs")
    for c in ("mode", "slots", "wall", "exp/h", "exp/slot-h", "slot util", "train share", "idle w/ work",
              "claim→step mean", "median", "overhead", "s/epoch"):
        table.add_column(c, justify="right")
    for r in results:
        table.add_row(r["mode"], str(r["slots"]), f"{r['wall_s']:.0f}s", f"{r['exp_per_hour']:.0f}", f"{r['exp_per_slot_hour']:.0f}",
                      f"{r['slot_utilisation']:.1%}", f"{r['train_share']:.1%}",
                      f"{r['waiting_idle_fraction']:.2%}", f"{r['claim_to_first_step_s']:.2f}s",
                      f"{r['claim_to_first_step_median_s']:.2f}s",
                      f"{r['overhead_s']:.2f}s", f"{r['seconds_per_epoch']:.2f}")
    Console(width=160).print(table)
    for slots in sorted({r["slots"] for r in results}):
        by = {r["mode"]: r for r in results if r["slots"] == slots}
        if "cold" in by and "warm" in by:
            print(f"{slots} slot(s): warm/cold throughput x{by['warm']['exp_per_hour'] / by['cold']['exp_per_hour']:.2f}; "
                  f"claim→step {by['cold']['claim_to_first_step_s']:.2f}s → {by['warm']['claim_to_first_step_s']:.2f}s")
    best = max(results, key=lambda r: r["exp_per_slot_hour"])
    unit = "GPU" if args.device == "cuda" else "CPU slot"
    per_gpu = best["exp_per_hour"] / (1 if args.device == "cuda" else best["slots"])
    print(f"best: {per_gpu:.0f} experiments per {unit}-hour ({best['mode']}, {best['slots']} slot(s)) "
          f"= x{per_gpu / REFERENCE_EXP_PER_GPU_HOUR:.1f} the reference campaign's "
          f"{REFERENCE_EXP_PER_GPU_HOUR} per GPU-hour")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.dir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
