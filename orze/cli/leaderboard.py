"""`orze leaderboard`: the ranked results (validation metric; the test metric is shown only).

Ranked by the project's task.metric in its direction (orze.metrics). `--metric NAME` ranks by any
registered metric instead, computed from each run's kept predictions (orze.predictions); runs
without kept predictions are left out and counted.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any, Optional

import orjson
import typer
from rich.table import Table

from orze.cli.common import RootOption, console, fail, layout_for
from orze.config import ConfigError, load_project
from orze.metrics import Metric, resolve
from orze.metrics import names as metric_names
from orze.pruning.rows import pruned_summary
from orze.store.leaderboard import metric_sign, rankable, ranked, read_rows, rebuild
from orze.vocab import RunStatus

FLAT_COLUMNS = ("rank", "id", "status", "metric", "test_metric", "backbone", "temporal_encoder",
                "pooling", "loss", "learning_rate", "batch_size", "seq_len", "epochs", "agent", "source",
                "duration_s", "verification", "checks_passed", "error")


def verification_text(row: dict[str, Any]) -> str:
    """'behavioural 46/46', 'self-reported 9/9', or '' for a row recorded before verification
    levels existed (or a failed run, which was never verified)."""
    v = row.get("verification")
    if not isinstance(v, dict) or not v.get("level"):
        return ""
    return f"{v['level']} {v.get('checks_passed', 0)}/{v.get('checks_total', 0)}"


def parse_where(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ValueError(f"--where {item!r}: expected key=value (e.g. --where backbone=vjepa2)")
        k, v = item.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def _value(row: dict[str, Any], key: str) -> Any:
    if key in row:
        return row[key]
    return (row.get("config") or {}).get(key)


def matches(row: dict[str, Any], where: list[tuple[str, str]]) -> bool:
    for key, want in where:
        have = _value(row, key)
        if isinstance(have, list):
            have = "+".join(have)
        if isinstance(have, (int, float)) and not isinstance(have, bool):
            try:
                if abs(float(want) - float(have)) > 1e-9 * max(1.0, abs(float(have))):
                    return False
                continue
            except ValueError:
                return False
        if str(have) != want:
            return False
    return True


def error_summary(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, dict):
        if error.get("findings"):
            return "misconfigured: " + "; ".join(error["findings"])
        return f"{error.get('class')}: {error.get('message', '')}"
    return str(error)


def select_rows(rows: list[dict], show_all: bool, where: list[tuple[str, str]], top: int | None,
                metric: str | None = None) -> list[dict]:
    rows = [r for r in rows if matches(r, where)]
    ordered = ranked(rows, metric)
    for i, r in enumerate(ordered, 1):
        r["rank"] = i
    if show_all:
        others = [r for r in rows if "rank" not in r]
        return ordered + sorted(others, key=lambda r: r.get("finished_at") or 0)
    return ordered[:top] if top else ordered


def flat(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for col in FLAT_COLUMNS:
        v = row.get("rank") if col == "rank" else _value(row, col)
        if col in ("verification", "checks_passed"):
            ver = row.get("verification") if isinstance(row.get("verification"), dict) else {}
            v = ver.get("level") if col == "verification" else ver.get("checks_passed")
        if col == "error":
            v = error_summary(row.get("error")) or pruned_summary(row)
        if isinstance(v, list):
            v = "+".join(v)
        out[col] = v
    return out


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"
    return str(v)


def rescored(layout, rows: list[dict], metric: Metric) -> tuple[list[dict], int]:
    """Finished runs re-ranked by `metric` computed from their kept predictions: copies of the
    rows with `metric`/`test_metric`/`metric_name` replaced, best first in the metric's direction;
    and how many finished runs kept no predictions (left out)."""
    from orze.predictions import run_metric  # numpy: only when --metric is asked for

    out, missing = [], 0
    for r in rows:
        if not rankable(r):
            continue
        try:
            values = run_metric(layout.run_dir(str(r["id"])), metric)
        except ValueError as e:
            raise fail(f"--metric: {e}; allowed: {', '.join(metric_names())}")
        if values is None or "val" not in values:
            missing += 1
            continue
        out.append({**r, "metric_name": metric.history_key, "metric": values["val"],
                    "test_metric": values.get("test")})
    return ranked(out, metric.history_key), missing


def project_metric(layout) -> str | None:
    """task.metric's history key, or None when configs/orze.yaml cannot be read (the latest row's
    metric is ranked then)."""
    try:
        return load_project(layout).task.spec.history_key
    except ConfigError:
        return None


def has_replicates(rows: list[dict]) -> bool:
    """Whether two finished runs share a configuration apart from the seed (pure, fast)."""
    seen: set[bytes] = set()
    for r in rows:
        config = r.get("config")
        if r.get("status") != RunStatus.DONE or not isinstance(config, dict):
            continue
        key = orjson.dumps({k: v for k, v in config.items() if k != "seed"},
                           option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        if key in seen:
            return True
        seen.add(key)
    return False


def replicate_info(layout, rows: list[dict]) -> tuple[dict[str, dict], dict | None]:
    """Mean ± std per replicated configuration (seed ignored) and whether the current best lies
    within the noise of the previous best; empty without replicated runs."""
    if not rows or not has_replicates(rows):
        return {}, None  # the common case, decided without building a frame of every row
    from orze.analysis.frame import frame_from_rows
    from orze.analysis.noise import noise_floor, replicate_stats
    from orze.space import SpaceError, load_space

    try:
        dims = list(load_space(layout.space_config).dimensions)
    except SpaceError:
        dims = None
    frame = frame_from_rows(rows)
    stats = replicate_stats(frame, dims)
    if not stats:
        return {}, None
    return stats, noise_floor(frame, dims)


def register(app: typer.Typer) -> None:
    @app.command("leaderboard")
    def leaderboard_cmd(
        root: Optional[Path] = RootOption,
        top: int = typer.Option(20, "--top", "-n", min=1, help="Show the best N."),
        show_all: bool = typer.Option(False, "--all", help="Every run, failed and misconfigured too, with reasons."),
        where: list[str] = typer.Option([], "--where", "-w", help="Filter key=value (a config dimension or a row field); repeatable."),
        as_json: bool = typer.Option(False, "--json", help="JSON rows."),
        as_csv: bool = typer.Option(False, "--csv", help="CSV rows."),
        do_rebuild: bool = typer.Option(False, "--rebuild", help="Regenerate leaderboard.jsonl from runs/exp/*/result.json first."),
        metric: Optional[str] = typer.Option(
            None, "--metric", "-m", help="Rank by this registered metric, computed from each run's kept "
                                         "predictions: " + ", ".join(metric_names()) + " (default: task.metric)."),
    ) -> None:
        """Show the leaderboard, ranked by the validation metric (task.metric, in its direction)."""
        layout = layout_for(root)
        if do_rebuild:
            n = rebuild(layout)
            console.print(f"rebuilt {layout.leaderboard} from run directories: {n} rows")
        try:
            conditions = parse_where(where)
        except ValueError as e:
            raise fail(str(e))
        all_rows = read_rows(layout.leaderboard)
        left_out = 0
        if metric is not None:
            try:
                chosen = resolve(metric)
            except ValueError as e:
                raise fail(f"--metric: {e}")
            scored, left_out = rescored(layout, [r for r in all_rows if matches(r, conditions)], chosen)
            rows = scored[:top]
            for i, r in enumerate(rows, 1):
                r["rank"] = i
        else:
            rows = select_rows(all_rows, show_all, conditions, None if show_all else top, project_metric(layout))
        stats, noise = replicate_info(layout, all_rows)
        for r in rows:
            if r["id"] in stats:
                r["replicates"] = stats[r["id"]]
        if as_json:
            sys.stdout.write(json.dumps(rows, indent=1, default=str) + "\n")
            return
        if as_csv:
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(FLAT_COLUMNS))
            w.writeheader()
            for r in rows:
                w.writerow(flat(r))
            sys.stdout.write(buf.getvalue())
            return
        if not rows:
            console.print("No results yet." + ("" if layout.leaderboard.exists() else
                                               f" ({layout.leaderboard} does not exist)"))
            return
        metric_name = rows[0].get("metric_name") or "val_ap"
        better = "higher" if metric_sign(metric_name) > 0 else "lower"
        source = "; computed from kept predictions" if metric is not None else ""
        table = Table(title=f"Leaderboard ({metric_name}, {better} is better{source}; the test metric is "
                            f"never used for ranking)")
        cols = ["#", "id", metric_name, "test", "backbone", "encoder", "pooling", "loss", "lr", "bs",
                "seq", "ep", "agent", "source", "time", "verified"] + (["mean ± std (n)"] if stats else []) \
            + (["status / reason"] if show_all else [])
        for c in cols:
            table.add_column(c, overflow="fold")
        for r in rows:
            f = flat(r)
            cells = [_fmt(f["rank"]), f["id"], _fmt(f["metric"]), _fmt(f["test_metric"]), _fmt(f["backbone"]),
                     _fmt(f["temporal_encoder"]), _fmt(f["pooling"]), _fmt(f["loss"]),
                     _fmt(f["learning_rate"]), _fmt(f["batch_size"]), _fmt(f["seq_len"]), _fmt(f["epochs"]),
                     _fmt(f["agent"]), _fmt(f["source"]), f"{f['duration_s']:.0f}s" if f["duration_s"] else "",
                     verification_text(r)]
            if stats:
                rep = r.get("replicates")
                cells.append(f"{rep['mean']:.4f} ± {rep['std']:.4f} ({rep['n']})" if rep else "")
            if show_all:
                cells.append(r.get("status", "") + (": " + f["error"] if f["error"] else ""))
            table.add_row(*cells)
        console.print(table)
        if left_out:
            console.print(f"{left_out} finished run(s) kept no predictions (recorded before predictions "
                          f"were kept, or a custom worker) and are not shown")
        if noise and noise.get("current_best_within_noise"):
            console.print(f"[yellow]note:[/] the current best improves on the previous best by less than "
                          f"the noise threshold ({noise['threshold']:.4f} = 1.96·√2·σ, σ = {noise['sigma']:.4f} "
                          f"pooled over {noise['replicated_configs']} replicated configurations); "
                          f"it may not be real (`orze replicate` adds seeds)")
