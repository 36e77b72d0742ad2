"""`orze features extract|import|check|backbones`: fill features/ and verify it.

Heavy imports (torch models, transformers, PyAV) happen inside the commands, so `orze --help` and
the other commands stay fast and work without the `features` extra installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from orze.cli.common import RootOption, console, err_console, fail, layout_for
from orze.features.store import FeatureStoreError

features_app = typer.Typer(help="Extract, import and check cached backbone features (features/).",
                           no_args_is_help=True)


@features_app.command("backbones")
def backbones_cmd() -> None:
    """List the backbones `extract` knows: model id, class, kind, embedding width."""
    from orze.features.backbones import REGISTRY

    table = Table(title="Backbones")
    for col in ("name", "model id", "transformers class", "kind", "dim", "input"):
        table.add_column(col, no_wrap=col in ("model id", "transformers class"))
    for b in REGISTRY.values():
        p = b.preprocessing
        table.add_row(b.name, b.model_id + (" (gated)" if b.gated else ""), b.model_class, b.kind,
                      str(b.dim), f"{p.side}px" + (f", {b.tubelet} frames/step" if b.tubelet > 1 else ""))
    console.print(table)


@features_app.command("extract")
def extract_cmd(
    backbone: str = typer.Option(..., "--backbone", "-b", help="Registry name (see `orze features backbones`)."),
    videos: Path = typer.Option(..., "--videos", help="Directory of videos named <clip_id>.<ext> (searched recursively)."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV clip_id,label,split (default: features/clips.csv)."),
    fps: float = typer.Option(5.0, "--fps", help="Sampling rate of the feature time steps."),
    frames: int = typer.Option(24, "--frames", help="Time steps per clip."),
    align: str = typer.Option("end", "--align", help="Window position in the clip: start | center | end."),
    batch_size: int = typer.Option(8, "--batch-size", help="Clips per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Hub id or local directory instead of the default checkpoint."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Override the model's input side in pixels."),
    workers: int = typer.Option(2, "--workers", help="Video decoding threads."),
    restart: bool = typer.Option(False, "--restart", help="Discard partial results and a store made with other settings."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    root: Optional[Path] = RootOption,
) -> None:
    """Run a frozen backbone over videos into features/<backbone>/ (resumable)."""
    from orze.features.backbones import BackboneError, get_backbone
    from orze.features.extract import ExtractError, ExtractSettings, extract
    from orze.features.labels import resolve_labels
    from orze.features.video import VideoError

    layout = layout_for(root)
    try:
        spec = get_backbone(backbone)
        clips, source = resolve_labels(layout.clips_csv, labels)
        settings = ExtractSettings(fps=fps, frames=frames, align=align, batch_size=batch_size,
                                   image_size=image_size, device=device, model_id=model_id,
                                   workers=workers, restart=restart)
        settings.validate()
        report = extract(layout, spec, videos, clips, settings, console=err_console,
                         progress=not quiet, labels_source=source)
    except (BackboneError, ExtractError, FeatureStoreError, VideoError) as e:
        raise fail(escape(str(e)))
    if report.failed:
        table = Table(title=f"Skipped {len(report.failed)} clip(s)")
        table.add_column("clip")
        table.add_column("reason", overflow="fold")
        for cid, why in report.failed[:50]:
            table.add_row(escape(cid), escape(why))
        err_console.print(table)
    console.print(
        f"[bold]{spec.name}[/]: {report.total} clips in {escape(str(report.store))} "
        f"({report.extracted} extracted, {report.reused} reused, {len(report.failed)} skipped; "
        f"D={report.dim}, {len(report.short)} shorter than the window) in {report.seconds:.1f}s",
        highlight=False)


@features_app.command("import")
def import_cmd(
    backbone: str = typer.Option(..., "--backbone", "-b", help="Store name under features/ (e.g. dinov2_b)."),
    source: Path = typer.Option(..., "--from", help="Per-clip .npy/.npz directory (clips may differ in length), an .npz of per-clip arrays named by clip id, one .npy/.npz (N, T, D) array with --index, or a .parquet file."),
    fmt: str = typer.Option("auto", "--format", help="auto | npy-dir | npz | array | parquet."),
    index: Optional[Path] = typer.Option(None, "--index", help="Clip ids of the array's rows (text, or CSV with clip_id)."),
    key: Optional[str] = typer.Option(None, "--key", help="Array name inside .npz files."),
    column: str = typer.Option("features", "--column", help="Parquet column with the features."),
    frames: Optional[int] = typer.Option(None, "--frames", help="T, when Parquet holds flat T·D lists."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV clip_id,label,split (default: features/clips.csv)."),
    model_id: Optional[str] = typer.Option(None, "--model-id", help="Recorded in meta.json."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Recorded in meta.json."),
    force: bool = typer.Option(False, "--force", help="Replace an existing store of this name."),
    root: Optional[Path] = RootOption,
) -> None:
    """Import features computed elsewhere, validated against features/clips.csv."""
    from orze.features.importers import import_features
    from orze.features.labels import merge_into_clips_csv, resolve_labels

    layout = layout_for(root)
    if not backbone or "/" in backbone or backbone.startswith("."):
        raise fail(escape(f"--backbone {backbone!r}: must be a plain directory name"))
    meta = {k: v for k, v in {"model_id": model_id, "fps": fps}.items() if v is not None}
    try:
        clips, src = resolve_labels(layout.clips_csv, labels)
        report = import_features(layout.backbone_dir(backbone), backbone, source, clips, fmt=fmt,
                                 index=index, key=key, column=column, frames=frames, meta=meta,
                                 overwrite=force)
        merge_into_clips_csv(layout.clips_csv, clips, src)
    except FeatureStoreError as e:
        raise fail(escape(str(e)))
    if report.ignored:
        err_console.print(f"[yellow]warning:[/] {len(report.ignored)} clip(s) in {source} are not in "
                          f"the labels and were left out: {escape(', '.join(report.ignored[:5]))}",
                          highlight=False)
    _warn_if_not_in_space(layout, backbone)
    lens = report.lengths
    shape = (f"clips of {lens['min']}–{lens['max']} frames (mean {lens['mean']:g}) padded to T={report.frames}"
             if report.ragged else f"T={report.frames}")
    console.print(f"[bold]{backbone}[/]: imported {report.clips} clips ({report.format}), "
                  f"{shape}, D={report.dim} into {escape(str(report.store))}", highlight=False)
    _warn_lengths(layout, backbone)


def _warn_lengths(layout, backbone: str) -> None:
    """What the space's seq_len does to the imported lengths (the same warnings as `check`)."""
    from orze.features.check import space_seq_len
    from orze.features.lengths import length_issues
    from orze.features.store import open_store

    store = open_store(layout.backbone_dir(backbone), backbone)
    seq_lens, default = space_seq_len(layout)
    for _code, _path, msg in length_issues(backbone, str(store.path), store.lengths, store.frames,
                                           store.ragged, seq_lens, default, str(layout.space_config)):
        err_console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False)


@features_app.command("check")
def check_cmd(
    backbone: Optional[list[str]] = typer.Option(None, "--backbone", "-b", help="Check only these stores (repeatable)."),
    max_rate_ratio: float = typer.Option(2.0, "--max-rate-ratio", help="Warn when split positive rates (a multiclass task: class shares against train's) differ more than this factor."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    root: Optional[Path] = RootOption,
) -> None:
    """Check every store and the split; exit 1 on any error."""
    from orze.features.check import check_features

    layout = layout_for(root)
    report = check_features(layout, backbone or None, max_rate_ratio)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        if report.stores:
            t = Table(title=f"Feature stores ({layout.features})")
            for col in ("backbone", "clips", "shape", "lengths min/mean/max", "padding",
                        "seq_len drops", "source", "model id"):
                t.add_column(col)
            for name, s in report.stores.items():
                ln, sq = s.get("lengths") or {}, s.get("seq_len") or {}
                t.add_row(name, str(s["clips"]), "×".join(map(str, s["shape"])),
                          f"{ln['min']}/{ln['mean']:g}/{ln['max']}" if ln else "-",
                          f"{ln['padding']:.0%}" if ln else "-",
                          f"{sq['frames_dropped']:.1%} at {sq['seq_len']}" if sq else "-",
                          str(s["source"]), str(s["model_id"]))
            console.print(t)
        if report.splits:
            t = Table(title="Split")
            binary = max(len(sm.class_counts) for sm in report.splits) <= 2
            for col in ("split", "clips", *(("positives", "rate") if binary else ("classes", "clips per class"))):
                t.add_column(col)
            for sm in report.splits:
                if binary:
                    t.add_row(sm.split, str(sm.clips), str(sm.positives), f"{sm.rate:.1%}")
                else:
                    per = " ".join(f"{c}:{n}" for c, n in enumerate(sm.class_counts[:20]))
                    more = f" … ({len(sm.class_counts) - 20} more)" if len(sm.class_counts) > 20 else ""
                    t.add_row(sm.split, str(sm.clips), str(sum(1 for n in sm.class_counts if n)), per + more)
            console.print(t)
        for i in report.issues:
            colour = "red" if i.level == "error" else "yellow"
            console.print(f"[{colour}]{i.level}[/] {escape(f'[{i.code}] {i.path}: {i.message}')}",
                          highlight=False)
        verdict = "[green]ok[/]" if report.ok else f"[red]{len(report.errors)} error(s)[/]"
        console.print(f"{verdict}, {len(report.warnings)} warning(s)")
    if not report.ok:
        raise typer.Exit(1)


def _warn_if_not_in_space(layout, backbone: str) -> None:
    """Ideas can only name backbones that configs/space.yaml lists; say so rather than fail later."""
    from orze.space import SpaceError, load_space

    if not layout.space_config.exists():
        return
    try:
        choices = load_space(layout.space_config).dimensions["backbone"].choices or []
    except (SpaceError, KeyError):
        return
    if backbone not in choices:
        err_console.print(f"[yellow]warning:[/] '{escape(backbone)}' is not a backbone choice in "
                          f"{escape(str(layout.space_config))}; add it there so ideas can use it",
                          highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(features_app, name="features")
