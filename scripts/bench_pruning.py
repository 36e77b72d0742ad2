"""What cross-run pruning saves, and whether it loses the best: the same campaign with pruning off
and on, through the real daemon.

One fixed list of N ideas from the random policy (seeded), sampled inside the demo's CPU
subspace (configs/orze.yaml's `explorer` agent: d_model 32, 1-2 layers, 10 epochs, learning rates
1e-3..5e-3, no mixup or noise; every other dimension over the whole space) or, with `--subspace
wide`, over the whole space but model size, 30-epoch schedules and batches of 16, on the demo
features (`orze demo features`: 1,500 clips,
six backbones). Each campaign is its own research directory sharing those features, runs the
ideas in the same order with the same seeds (`orze submit`, then `orze run --until-idle`), one
torch thread per slot, and differs only in `pruning.enabled`. Printed:

  training s     sum over runs of the seconds spent in training epochs and awaiting the pruner's
                 verdicts between them (metrics' timings train_s + verdict_wait_s)
  epochs         sum over runs of the epochs trained (the same cost, independent of the
                 machine's load: on a shared machine seconds vary by tens of percent)
  wall s         `orze run` from start to exit
  pruned         runs the pruner stopped
  best           best validation metric, and its run's idea index
  saved          1 - training s (on) / training s (off): the share of training time saved
  estimate       the pruned rows' own estimate of what they saved ((epochs - run) x s/epoch)
  at off speed   the on campaign's training seconds at the off campaign's speed: each run's epochs
                 times the same idea's seconds per epoch with pruning off (runs that were not
                 pruned are bit-identical in both, so this removes the machine's load from the
                 comparison when the two campaigns ran at different times)
  true best      the off campaign's best idea: its status and rank in the on campaign
  noise floor    the std of the true best's validation metric over --noise-seeds new seeds
                 (run with `prune: never`), against which "best unchanged" is judged

Usage:
  python scripts/bench_pruning.py --ideas 150                  # the issue's campaign
  python scripts/bench_pruning.py --ideas 12 --noise-seeds 0   # a quick check
  python scripts/bench_pruning.py --dir D --phase off           # one campaign now, ...
  python scripts/bench_pruning.py --dir D --phase on            # ... the other later; figures once
                                                                #     both are in D
  python scripts/bench_pruning.py --rule successive_halving --comparable-by epochs scheduler backbone
  python scripts/bench_pruning.py --replay D/off                # other settings, from D's off campaign
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orze.agents.base import History, SubspacePolicy  # noqa: E402
from orze.agents.policies.random_policy import RandomPolicy  # noqa: E402
from orze.cli.init import init_directory  # noqa: E402
from orze.layout import Layout  # noqa: E402
from orze.space import fingerprint, load_space  # noqa: E402
from orze.store.leaderboard import ranked, read_rows  # noqa: E402


def orze(*args: str, root: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "ORZE_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "orze", *args, "--root", str(root)], env=env, timeout=timeout,
                          capture_output=True, text=True, check=True)


def demo_subspace() -> dict:
    project = yaml.safe_load((REPO / "configs" / "orze.yaml").read_text())
    explorer = next(a for a in project["agents"] if a["name"] == "explorer")
    return explorer["options"]["subspace"]


# The whole space but what a 2-core machine cannot afford: model size (d_model 32, 1-2 layers) and
# the longest schedules and smallest batches. Learning rates, schedules of three lengths,
# patience, every regulariser and mixup are drawn over their whole ranges.
WIDE = {"d_model": 32, "num_layers": [1, 2], "num_heads": [2, 4], "epochs": [5, 10, 20],
        "batch_size": [32, 64, 128]}


def subspace(name: str) -> dict:
    return demo_subspace() if name == "demo" else dict(WIDE)


def make_ideas(n: int, seed: int, which: str = "demo") -> list[dict]:
    space = load_space(REPO / "configs" / "space.yaml")
    ideas = SubspacePolicy(RandomPolicy(seed=seed), subspace(which)).propose(History(space), n)
    return [{**idea, "idea_name": f"idea {i}"} for i, idea in enumerate(ideas)]


def prepare(root: Path, features: Path, pruning: dict, slots: int) -> Layout:
    init_directory(root)
    layout = Layout.at(root)
    (root / "features").mkdir(exist_ok=True)
    for p in features.iterdir():   # share the stores and the clip table (read-only)
        if not (root / "features" / p.name).exists():
            (root / "features" / p.name).symlink_to(p)
    proj = yaml.safe_load(layout.project_config.read_text())
    proj["agents"] = []
    proj["sweeps"] = {"enabled": False}
    proj["scheduler"].update({"cpu_slots": slots, "threads_per_slot": 1})
    proj["pruning"] = pruning
    layout.project_config.write_text(yaml.safe_dump(proj, sort_keys=False))
    return layout


def campaign(root: Path, features: Path, ideas_file: Path, pruning: dict, slots: int, timeout: float) -> dict:
    prepare(root, features, pruning, slots)
    orze("submit", str(ideas_file), root=root, timeout=600)
    t0 = time.time()
    orze("run", "--until-idle", "--quiet", root=root, timeout=timeout)
    (root / "bench.json").write_text(json.dumps({"wall_s": time.time() - t0, "pruning": pruning}))
    return summarise(root)


def summarise(root: Path) -> dict:
    """One finished campaign's figures, from its directory (the idea list's runs only)."""
    rows = [r for r in read_rows(Layout.at(root).leaderboard)
            if not (r.get("idea_name") or "").startswith("noise")]
    # the seconds awaiting the pruner's verdicts at epoch boundaries are a cost of pruning: counted
    train = sum(float((r.get("timings") or {}).get("train_s") or 0.0)
                + float((r.get("timings") or {}).get("verdict_wait_s") or 0.0) for r in rows)
    epochs = sum(int(r.get("epochs_run") or 0) for r in rows)
    best = ranked(rows)[:1]
    return {"root": str(root), "rows": rows, "wall_s": json.loads((root / "bench.json").read_text())["wall_s"],
            "train_s": train, "epochs": epochs,
            "runs": len(rows), "statuses": {s: sum(r["status"] == s for r in rows) for s in
                                            ("done", "pruned", "failed", "misconfigured")},
            "estimate_saved_s": sum(float((r.get("pruned") or {}).get("saved_s") or 0.0) for r in rows),
            "best": best[0] if best else None}


def at_off_speed(off_rows: list[dict], on_rows: list[dict]) -> float | None:
    """The on campaign's training seconds at the off campaign's seconds per epoch, idea by idea."""
    per_epoch = {r["fingerprint"]: float((r.get("timings") or {}).get("train_s") or 0.0) / int(r["epochs_run"])
                 for r in off_rows if r.get("epochs_run")}
    total = 0.0
    for r in on_rows:
        if r["fingerprint"] not in per_epoch:
            return None
        total += per_epoch[r["fingerprint"]] * int(r.get("epochs_run") or 0) \
            + float((r.get("timings") or {}).get("verdict_wait_s") or 0.0)
    return total


def noise_floor(root: Path, best: dict, seeds: int, timeout: float) -> None:
    """Run the best configuration with `seeds` new seeds and keep its metric over its own seed and
    those in root/noise.json (the figures take the noise floor, their std, from there)."""
    if seeds < 1:
        return
    base = dict(best["config"])
    ideas = [{**base, "seed": int(base.get("seed", 0)) + 1000 + s, "prune": "never",
              "idea_name": f"noise {s}"} for s in range(seeds)]
    path = root / "noise.yaml"
    path.write_text(yaml.safe_dump(ideas))
    orze("submit", str(path), root=root, timeout=600)
    orze("run", "--until-idle", "--quiet", root=root, timeout=timeout)
    rows = [r for r in read_rows(Layout.at(root).leaderboard) if (r.get("idea_name") or "").startswith("noise")]
    values = [float(best["metric"])] + [float(r["metric"]) for r in rows if r["status"] == "done"]
    (root / "noise.json").write_text(json.dumps(values))


REPLAY = [   # (label, pruning settings, comparable_by)
    ("median (default)", {}, ["epochs", "scheduler"]),
    ("median, warm-up 0", {"warmup_epochs": 0}, ["epochs", "scheduler"]),
    ("median, warm-up 2", {"warmup_epochs": 2}, ["epochs", "scheduler"]),
    ("median, warm-up 3", {"warmup_epochs": 3}, ["epochs", "scheduler"]),
    ("median, min_comparable 8", {"min_comparable": 8}, ["epochs", "scheduler"]),
    ("median, percentile 25", {"percentile": 25}, ["epochs", "scheduler"]),
    ("median, by epochs+scheduler+backbone", {}, ["epochs", "scheduler", "backbone"]),
    ("successive halving", {"rule": "successive_halving"}, ["epochs", "scheduler"]),
    ("successive halving, warm-up 0", {"rule": "successive_halving", "warmup_epochs": 0}, ["epochs", "scheduler"]),
    ("successive halving, eta 2", {"rule": "successive_halving", "reduction_factor": 2}, ["epochs", "scheduler"]),
]


def replay(off_rows: list[dict], settings: dict, keys: list[str], slots: int, lag: int = 0) -> dict:
    """What a setting would have done to a campaign run without pruning, from its recorded
    curves, with the real decision (orze.pruning.decide) and index: runs in the order they were
    recorded, each judged against the runs recorded before it but the slots-1 that ran beside
    it, a run stopped `lag` epochs after the judged one. An estimate: with pruning, runs end
    sooner, so the order of recording differs a little."""
    from orze.pruning import PruningConfig, decide
    from orze.pruning.index import CurveIndex

    cfg = PruningConfig(**settings)
    index = CurveIndex(keys)
    rows = [r for r in off_rows if r.get("status") in ("done", "failed", "misconfigured")]
    running, total, saved, pruned = [], 0, 0, set()
    for r in rows:
        curve = list(r.get("curve") or [])
        total += len(curve)
        row = r
        if r["status"] == "done":
            comparable = index.comparable(r["config"])
            for e in range(1, len(curve) + 1):
                if decide(curve[:e], comparable, cfg).prune:
                    stop = min(e + lag, len(curve))
                    saved += len(curve) - stop
                    pruned.add(r["id"])
                    row = {**r, "status": "pruned", "curve": curve[:stop], "pruned": {"epoch": e}}
                    break
        running.append(row)
        if len(running) >= slots:
            index.add(running.pop(0))
    top = sorted((r for r in rows if r["status"] == "done"), key=lambda r: -float(r["metric"]))[:10]
    return {"epochs": total, "saved": saved / total if total else 0.0, "pruned": len(pruned),
            "best_pruned": bool(top) and top[0]["id"] in pruned,
            "top10_pruned": sum(r["id"] in pruned for r in top)}


def print_replay(off_rows: list[dict], slots: int) -> None:
    print("replay of the campaign's recorded curves (an estimate: epochs saved, runs pruned, whether the best "
          "and how many of the 10 best would be pruned):")
    for label, settings, keys in REPLAY:
        r = replay(off_rows, settings, keys, slots)
        late = replay(off_rows, settings, keys, slots, lag=1)
        print(f"  {label:40s} saved {r['saved']:6.1%} (stop one epoch late: {late['saved']:6.1%}), "
              f"pruned {r['pruned']:3d}, best pruned: {'YES' if r['best_pruned'] else 'no '}, "
              f"of the top 10: {r['top10_pruned']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ideas", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0, help="the random policy's seed (the idea list)")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--rule", choices=["median", "successive_halving"], default=None)
    ap.add_argument("--warmup-epochs", type=int, default=None)
    ap.add_argument("--min-comparable", type=int, default=None)
    ap.add_argument("--comparable-by", nargs="+", default=None)
    ap.add_argument("--noise-seeds", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="scratch directory (default: a new temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--timeout", type=float, default=6 * 3600)
    ap.add_argument("--subspace", choices=["demo", "wide"], default="demo",
                    help="demo: the demo agent's CPU subspace; wide: the whole space but model size, "
                         "the longest schedules and the smallest batches")
    ap.add_argument("--replay", type=Path, default=None, metavar="RESEARCH_DIR",
                    help="only replay a finished campaign run with pruning off (this benchmark's "
                         "DIR/off, or any research directory) under several settings: an estimate")
    ap.add_argument("--phase", choices=["off", "on", "both"], default="both",
                    help="run one campaign only (the figures are printed once both are in --dir)")
    args = ap.parse_args()

    if args.replay is not None:
        board = Layout.at(args.replay).leaderboard
        if not board.exists():
            raise SystemExit(f"{board}: no leaderboard (--replay takes a research directory)")
        rows = [r for r in read_rows(board) if not str(r.get("idea_name") or "").startswith("noise")]
        if any(r.get("status") == "pruned" for r in rows):
            print("note: this campaign pruned runs already; their partial curves are replayed as they are")
        print_replay(rows, args.slots)
        return 0
    work = args.dir or Path(tempfile.mkdtemp(prefix="orze-bench-pruning-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    if not (base / "features" / "clips.csv").exists():
        init_directory(base)
        orze("demo", "features", root=base, timeout=1800)
    ideas = make_ideas(args.ideas, args.seed, args.subspace)
    ideas_file = work / "ideas.yaml"
    ideas_file.write_text(yaml.safe_dump(ideas, sort_keys=False))
    on = {"enabled": True, **{k: v for k, v in (("rule", args.rule), ("warmup_epochs", args.warmup_epochs),
                                                  ("min_comparable", args.min_comparable),
                                                  ("comparable_by", args.comparable_by)) if v is not None}}
    if args.phase != "both" and args.dir is None:
        raise SystemExit("--phase off/on needs --dir, so the other phase finds this one")
    if ideas_file.exists() and ideas_file.read_text() != yaml.safe_dump(ideas, sort_keys=False):
        raise SystemExit(f"{ideas_file} holds another idea list (other --ideas or --seed): use a fresh --dir")
    ideas_file.write_text(yaml.safe_dump(ideas, sort_keys=False))
    for name, pruning in (("off", {"enabled": False}), ("on", on)):
        if args.phase not in (name, "both"):
            continue
        root = work / name
        if root.exists():
            raise SystemExit(f"{root} exists: use a fresh --dir")
        r = campaign(root, base / "features", ideas_file, pruning, args.slots, args.timeout)
        print(f"{name:>3}: {r['runs']} runs {r['statuses']}, training {r['train_s']:.1f}s, "
              f"epochs {r['epochs']}, wall {r['wall_s']:.1f}s", flush=True)
        if name == "off" and r["best"] is not None:
            noise_floor(root, r["best"], args.noise_seeds, args.timeout)
    if not all((work / name / "bench.json").exists() for name in ("off", "on")):
        print(f"the other campaign is not in {work} yet: run --phase {'on' if args.phase == 'off' else 'off'}")
        return 0
    results = {name: summarise(work / name) for name in ("off", "on")}
    off, onr = results["off"], results["on"]
    true_best = off["best"]
    fp = fingerprint(true_best["config"]) if true_best else None
    on_row = next((r for r in onr["rows"] if r["fingerprint"] == fp), None)
    on_ranked = ranked(onr["rows"])
    rank = next((i for i, r in enumerate(on_ranked, 1) if r["fingerprint"] == fp), None)
    saved = 1.0 - onr["train_s"] / off["train_s"] if off["train_s"] else 0.0
    saved_epochs = 1.0 - onr["epochs"] / off["epochs"] if off["epochs"] else 0.0
    noise = work / "off" / "noise.json"
    values = json.loads(noise.read_text()) if noise.exists() else []
    sigma = statistics.stdev(values) if len(values) > 1 else None
    normalised = at_off_speed(off["rows"], onr["rows"])
    saved_normalised = 1.0 - normalised / off["train_s"] if normalised is not None and off["train_s"] else None
    best_on = onr["best"]
    delta = float(true_best["metric"]) - float(best_on["metric"]) if true_best and best_on else None
    figures = {
        "ideas": args.ideas, "seed": args.seed, "slots": args.slots, "pruning": on,
        "subspace": subspace(args.subspace),
        "off": {k: v for k, v in off.items() if k not in ("rows", "best")},
        "on": {k: v for k, v in onr.items() if k not in ("rows", "best")},
        "training_saved_share": saved, "epochs_saved_share": saved_epochs,
        "on_train_s_at_off_speed": normalised, "training_saved_share_at_off_speed": saved_normalised,
        "best_off": true_best and {"metric": true_best["metric"], "idea": true_best["idea_name"]},
        "best_on": best_on and {"metric": best_on["metric"], "idea": best_on["idea_name"]},
        "true_best_in_on": on_row and {"status": on_row["status"], "rank": rank},
        "best_delta": delta, "noise_floor_std": sigma,
    }
    print(f"pruning {on}")
    print(f"training seconds: off {off['train_s']:.1f}, on {onr['train_s']:.1f}: saved {saved:.1%} "
          f"(pruned rows' own estimate {onr['estimate_saved_s']:.1f}s); wall off {off['wall_s']:.1f}s, "
          f"on {onr['wall_s']:.1f}s")
    if normalised is not None:
        print(f"on campaign's training seconds at the off campaign's speed (idea by idea): {normalised:.1f}s: "
              f"saved {saved_normalised:.1%}")
    print(f"epochs trained: off {off['epochs']}, on {onr['epochs']}: saved {saved_epochs:.1%} (independent of "
          f"the machine's load; seconds on a shared machine vary with it)")
    print(f"runs pruned: {onr['statuses']['pruned']} of {onr['runs']}")
    if true_best:
        print(f"best off: {true_best['metric']:.4f} ({true_best['idea_name']}); best on: "
              f"{best_on['metric']:.4f} ({best_on['idea_name']}); difference {delta:+.4f}"
              + (f"; noise floor (std over seeds) {sigma:.4f}" if sigma is not None else ""))
        print(f"true best in the pruned campaign: {on_row['status'] if on_row else 'absent'}, rank {rank}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    print_replay(off["rows"], args.slots)
    print(f"directories kept under {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
