"""`orze predict RUN_ID --features DIR`: score new clips with a finished run's kept weights.

Writes one CSV row per clip (clip_id, predicted class, and the probability of each class; a
binary task's single column is P(1)) to --out, or to stdout; the work is orze.worker.inference's.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Optional

import typer

from orze.cli.common import RootOption, console, fail, layout_for
from orze.store.atomic import atomic_write_text


def predictions_csv(ids: list[str], probs) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    if probs.ndim == 1:
        w.writerow(["clip_id", "predicted", "p_1"])
        for c, p in zip(ids, probs):
            w.writerow([c, int(p >= 0.5), f"{float(p):.6g}"])
    else:
        w.writerow(["clip_id", "predicted"] + [f"p_{k}" for k in range(probs.shape[1])])
        for c, row in zip(ids, probs):
            w.writerow([c, int(row.argmax())] + [f"{float(p):.6g}" for p in row])
    return buf.getvalue()


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict_cmd(
        run_id: str = typer.Argument(..., help="A finished run (runs/exp/<id>/) that kept its weights."),
        features: Path = typer.Option(..., "--features", "-f",
                                      help="A features directory holding <backbone>/ stores (or one store)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the CSV here (default: stdout)."),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, …"),
        root: Optional[Path] = RootOption,
    ) -> None:
        """Score the clips of a feature store with a finished run's weights (worker.keep_weights: best)."""
        from orze.worker.inference import InferenceError, load_run_model, score_features

        layout = layout_for(root)
        run_dir = layout.run_dir(run_id)
        if not run_dir.is_dir():
            raise fail(f"{run_dir}: no such run")
        try:
            run = load_run_model(run_dir, device)
            ids, probs = score_features(run, features, device)
        except InferenceError as e:
            raise fail(str(e))
        text = predictions_csv(ids, probs)
        if out is None:
            sys.stdout.write(text)
            return
        atomic_write_text(out, text)
        console.print(f"scored {len(ids)} clips with run {run_id} ({', '.join(run.backbones)}) → {out}")
