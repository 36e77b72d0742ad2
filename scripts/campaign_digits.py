"""The digits campaign (orze.datasets.digits) through the real CLI and daemon, with its figures.

    python scripts/campaign_digits.py [--metric accuracy] [--root DIR] [--ideas 4] [--epochs N]

Builds a research directory, imports scikit-learn's digits with `orze features import`, submits
the campaign's ideas and runs `orze run --until-idle`, then prints: the pooled-statistics
logistic-regression baseline's accuracy, the best Orze configuration (ranked by validation
task.metric) with its validation and test accuracy (from its kept predictions), and the wall time.
With another --metric (e.g. log_loss) it also prints what each consumer of task.metric did:
the ranking and its direction, early stopping and selection per run, `orze status`'s best, and
the agents' prompt line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from orze.agents.base import History
from orze.agents.context import load_template, read_history, render_prompt
from orze.config import load_project
from orze.datasets import digits
from orze.layout import RUN_METRICS, Layout
from orze.metrics import resolve
from orze.predictions import run_metric
from orze.space import load_space
from orze.status import gather
from orze.store.leaderboard import ranked, read_rows


def orze(*args: str, root: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "orze", *args, "--root", str(root)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"orze {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--metric", default="accuracy", help="task.metric (a registered metric)")
    ap.add_argument("--root", type=Path, default=None, help="research directory (default: a temporary one)")
    ap.add_argument("--ideas", type=int, default=len(digits.CAMPAIGN))
    ap.add_argument("--epochs", type=int, default=None, help="override the ideas' epochs")
    ap.add_argument("--slots", type=int, default=2)
    args = ap.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="orze-digits-"))
    t0 = time.time()
    source, labels = digits.make_research_dir(root, metric=args.metric, cpu_slots=args.slots)
    orze("features", "import", "-b", digits.BACKBONE, "--from", str(source), "--labels", str(labels), root=root)
    ideas = digits.ideas()[: args.ideas]
    if args.epochs:
        ideas = [{**i, "epochs": args.epochs} for i in ideas]
    (root / "ideas.yaml").write_text(yaml.safe_dump(ideas))
    orze("submit", str(root / "ideas.yaml"), root=root)
    orze("run", "--until-idle", "--quiet", root=root)
    wall = time.time() - t0

    layout = Layout.at(root)
    rows = read_rows(layout.leaderboard)
    board = ranked(rows)
    if not board:
        raise SystemExit(f"no finished runs: {[r.get('error') for r in rows]}")
    base = digits.pooled_baseline(digits.load())
    best = board[0]
    acc = run_metric(layout.run_dir(best["id"]), resolve("accuracy"))
    c = best["config"]
    print(f"research dir: {root}")
    print(f"runs: {len(rows)} ({sum(r['status'] == 'done' for r in rows)} done), wall time {wall:.1f}s "
          f"(import, campaign and recording, {args.slots} CPU slots)")
    print(f"baseline (mean+std over frames -> LogisticRegression): val accuracy {base['val']:.4f}, "
          f"test accuracy {base['test']:.4f}")
    print(f"best Orze configuration: {best['id']} '{best.get('idea_name')}' ({c['temporal_encoder']}, "
          f"pooling {c['pooling']}, loss {c['loss']}, d_model {c['d_model']}), ranked by "
          f"{best['metric_name']} = {best['metric']:.4f}")
    print(f"best Orze configuration: val accuracy {acc['val']:.4f}, test accuracy {acc['test']:.4f} "
          f"({'beats' if acc['test'] > base['test'] else 'does NOT beat'} the baseline's {base['test']:.4f})")

    m = resolve(load_project(layout).task.metric)
    print(f"\ntask.metric = {m.name}: every consumer")
    print(f"  ranking ({m.history_key}, {'higher' if m.direction == 'max' else 'lower'} is better): "
          + ", ".join(f"{r['id'][-6:]}={r['metric']:.4f}" for r in board))
    for r in board:
        mt = json.loads((layout.run_dir(r["id"]) / RUN_METRICS).read_text())
        values = [h[m.history_key] for h in mt["history"]]
        print(f"  worker {r['id'][-6:]}: selection on {mt['selection']['metric']} -> epoch "
              f"{mt['selection']['best_epoch']} of {mt['epochs_run']} run (patience {r['config']['patience']}); "
              f"history {', '.join(f'{v:.3f}' for v in values)}")
    st = gather(layout)["best"]
    print(f"  orze status: best {st['id'][-6:]} {st['metric_name']}={st['metric']:.4f}")
    project = load_project(layout)
    history: History = read_history(layout, load_space(layout.space_config), None,
                                    project.task.spec.history_key, project.task.type)
    prompt = render_prompt(load_template(layout), history, agent="explorer", n=4)
    said = f"validation {m.history_key} ({history.direction} is better)"
    print(f"  agents' prompt: 'Runs are ranked by {said}' "
          f"({'present' if said in prompt else 'MISSING'} in the rendered prompts/research.md)")
    print(f"  agents' prompt leader: {prompt.split('Current leader:')[1].splitlines()[0].strip()}")


if __name__ == "__main__":
    main()
