"""`orze analyze`, `orze report` and `orze replicate`: the campaign analysis (docs/analysis.md).

The commands read runs/leaderboard.jsonl through orze.analysis; bad input (an empty leaderboard, too
few runs, an unknown --after id) ends with one clear error line, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.table import Table

from orze.cli.common import RootOption, console, fail, layout_for
from orze.space import SpaceError, load_space
from orze.store.inbox import submit_ideas
from orze.store.leaderboard import read_rows

if TYPE_CHECKING:  # pandas and scipy load only when an analysis command runs (every orze command
    from orze.analysis.summary import Analysis  # would otherwise pay about a second for them)


def _space(layout):
    if not layout.space_config.exists():
        return None  # analysis still works from the leaderboard's columns alone
    try:
        return load_space(layout.space_config)
    except SpaceError as e:
        raise fail(str(e))


def _f(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


def _p(v: Any) -> str:
    """A p-value; one that underflowed to 0 is shown as a bound, not as a certainty."""
    return "<1e-300" if v == 0 else _f(v)


@dataclass(frozen=True)
class AnalysisOptions:
    """What selects and tunes an analysis; `orze analyze` and `orze report` take the same options
    (the typer Option objects below are the one definition both commands declare)."""
    after: Optional[str] = None
    since: Optional[str] = None
    window: Optional[int] = None
    seed: int = 0
    permutations: int = 200
    replays: int = 1000
    tpe_trials: int = 500
    entropy_window: int = 100
    min_group_runs: int = 10


AfterOpt = typer.Option(None, "--after", help="Only runs completed after this run id.")
SinceOpt = typer.Option(None, "--since", help="Only runs finished at/after this ISO time.")
WindowOpt = typer.Option(None, "--window", min=1, help="Only the last N finished runs.")
SeedOpt = typer.Option(0, "--seed", help="Seed for permutations, re-subsamples and TPE.")
PermutationsOpt = typer.Option(200, "--permutations", min=0, help="Random orders for the R² null.")
ReplaysOpt = typer.Option(1000, "--replays", min=1, help="Random orders for the random-search replay.")
TpeOpt = typer.Option(500, "--tpe-trials", min=0, help="TPE replay length (0 turns it off).")
EntropyWindowOpt = typer.Option(100, "--entropy-window", min=2,
                                help="Runs per entropy/JSD window (shrunk to fit a small campaign).")
MinGroupOpt = typer.Option(10, "--min-group-runs", min=2, help="Runs an architecture group needs for ANOVA.")


def _run_analysis(root, opts: AnalysisOptions) -> Analysis:
    from orze.analysis import AnalysisError, load_frame
    from orze.analysis.frame import parse_since
    from orze.analysis.summary import analyze

    if opts.since and opts.window:
        raise fail("--since and --window exclude each other; give one")
    layout = layout_for(root)
    space = _space(layout)
    try:
        frame = load_frame(layout)
        since_ts = parse_since(opts.since) if opts.since else None
        return analyze(frame, space, after=opts.after, since=since_ts, window=opts.window, seed=opts.seed,
                       permutations=opts.permutations, replay_permutations=opts.replays,
                       tpe_trials=opts.tpe_trials, entropy_window=opts.entropy_window,
                       min_group_runs=opts.min_group_runs)
    except AnalysisError as e:
        raise fail(str(e))


def _print(a: Analysis) -> None:
    s = a.summary
    sel = s["selection"]
    console.print(f"[bold]{sel['analysed']}[/] finished runs analysed ({sel['rows']} rows on the leaderboard); "
                  f"best {sel['metric_name']} [bold]{_f(sel['best'])}[/] ({sel['best_id']})")
    conv = s["convergence"]
    if "error" in conv:
        console.print(f"[yellow]{conv['error']}[/]")
    else:
        t = Table(title="Convergence of the best so far")
        for c in ("model", "parameters ± s.e.", "fit", "R²", "AIC"):
            t.add_column(c)
        for m, fd in conv["fits"].items():
            params = ("  ".join(f"{k}={_f(v)}±{_f(fd['stderr'].get(k))}" for k, v in fd["params"].items())
                      if fd["ok"] else "–")
            t.add_row(m + (" ✓" if m == conv["selected"] else ""), params, fd.get("verdict", ""),
                      _f(fd["r2"]), _f(fd["aic"], 1))
        console.print(t)
        console.print(conv.get("verdict", ""), highlight=False)
        null = conv.get("null") or {}
        console.print(f"R² permutation null ({null.get('permutations', 0)} orders): mean {_f(null.get('r2_mean'))}, "
                      f"95th pct {_f(null.get('r2_p95'))}; observed above it: {_f(conv.get('beats_null_p95'))}")
    var = s["variance"]
    t = Table(title="Variance decomposition of the metric")
    for c in ("analysis", "share (η²)", "F", "p", "runs / groups"):
        t.add_column(c)
    ow = var["one_way"]
    if "error" in ow:
        t.add_row("one-way backbone×encoder", ow["error"], "", "", "")
    else:
        t.add_row("one-way backbone×encoder", _f(ow["eta2"]), _f(ow["F"], 2), _p(ow["p"]), f"{ow['runs']} / {ow['groups']}")
    bal = var["balanced"]
    if "error" not in bal:
        t.add_row(f"balanced ({bal['per_group']} per group)", f"{_f(bal['eta2_mean'])} "
                  f"[{_f(bal['eta2_lo'])}, {_f(bal['eta2_hi'])}]", "", "", f"– / {bal['groups']}")
    tw = var["two_way"]
    if "error" in tw:
        t.add_row("two-way backbone, encoder", tw["error"], "", "", "")
    else:
        for term, v in tw["terms"].items():
            t.add_row(f"two-way: {term}", _f(v["share"]), _f(v["F"], 2), _p(v["p"]), str(tw["runs"]))
    for b, v in (var["within_backbone"] if "error" not in var["within_backbone"] else {}).items():
        t.add_row(f"encoder within {b}", _f(v["eta2"]), _f(v["F"], 2), _p(v["p"]), f"{v['runs']} / {v['groups']}")
    console.print(t)
    t = Table(title="Exploration")
    for c in ("measure", "min", "max", "last"):
        t.add_column(c)
    ent = s["entropy"]
    if "error" not in ent:
        for comp in [*ent["components"], "joint"]:
            t.add_row(f"entropy {comp} (bits, window {ent['window']})", _f(ent[comp]["min"], 3),
                      _f(ent[comp]["max"], 3), _f(ent[comp]["last"], 3))
    jsd = s["jsd"]
    if "error" in jsd:
        t.add_row("JSD between agents", jsd["error"], "", "")
    else:
        t.add_row(f"JSD between agents ({', '.join(jsd['agents'])})", _f(jsd["min"], 3), _f(jsd["max"], 3), _f(jsd["last"], 3))
    inn = s["innovation"]
    fit = inn["fit"]
    t.add_row("innovation: new bests after the first", str(inn["improvements"]), "", "")
    t.add_row("innovation decay β (P ∝ n^−β)", (f"{_f(fit['beta'], 3)} ± {_f(fit['beta_se'], 3)}"
                                                if fit.get("ok") else fit.get("message", "")), "", "")
    console.print(t)
    bl = s["baselines"]
    if "error" in bl:
        console.print(f"[yellow]{bl['error']}[/]")
    else:
        t = Table(title=f"Policies on the same pool (random: {bl['permutations']} orders; TPE: {bl['tpe_trials']} trials)")
        cols = [k for k in bl["table"][0] if k not in ("policy", "runs")]
        t.add_column("policy")
        t.add_column("runs")
        for c in cols:
            t.add_column(c.replace("at_", "best@"))
        for row in bl["table"]:
            t.add_row(row["policy"], str(row["runs"]), *[_f(row[c]) for c in cols])
        console.print(t)
        if bl.get("tpe_error"):
            console.print(f"[yellow]TPE replay:[/] {bl['tpe_error']}")
    nz = s["noise"]
    if nz["replicated_configs"]:
        t = Table(title=f"Replicated configurations (pooled σ {_f(nz['sigma'])}; noise threshold {_f(nz['threshold'])})")
        for c in ("first run", "n", "mean ± std", "min", "max"):
            t.add_column(c)
        for r in nz["replicates"][:10]:
            t.add_row(str(r["first_id"]), str(r["n"]), f"{_f(r['mean'])} ± {_f(r['std'])}", _f(r["min"]), _f(r["max"]))
        console.print(t)
        if nz["current_best_within_noise"]:
            ev = nz["best_events"][-1]
            console.print(f"[yellow]the current best {ev['id']} beats the previous best {ev['previous_id']} by "
                          f"{_f(ev['gain'])}, within the noise ({_f(nz['threshold'])})[/]")
    else:
        console.print("No replicated configurations yet (`orze replicate --top K --seeds S` makes some).")


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze_cmd(
        root: Optional[Path] = RootOption,
        as_json: bool = typer.Option(False, "--json", help="Print the analysis as JSON."),
        after: Optional[str] = AfterOpt, since: Optional[str] = SinceOpt, window: Optional[int] = WindowOpt,
        seed: int = SeedOpt, permutations: int = PermutationsOpt, replays: int = ReplaysOpt,
        tpe_trials: int = TpeOpt, entropy_window: int = EntropyWindowOpt, min_group_runs: int = MinGroupOpt,
    ) -> None:
        """Convergence, variance decomposition, exploration, baselines and noise floor of the campaign."""
        a = _run_analysis(root, AnalysisOptions(after, since, window, seed, permutations, replays,
                                                tpe_trials, entropy_window, min_group_runs))
        if as_json:
            from orze.analysis.summary import to_jsonable
            print(json.dumps(to_jsonable(a.summary), indent=1))
        else:
            _print(a)

    @app.command("report")
    def report_cmd(
        root: Optional[Path] = RootOption,
        out: Optional[Path] = typer.Option(None, "--out", help="Directory for index.html (default runs/report)."),
        after: Optional[str] = AfterOpt, since: Optional[str] = SinceOpt, window: Optional[int] = WindowOpt,
        seed: int = SeedOpt, permutations: int = PermutationsOpt, replays: int = ReplaysOpt,
        tpe_trials: int = TpeOpt, entropy_window: int = EntropyWindowOpt, min_group_runs: int = MinGroupOpt,
    ) -> None:
        """Write the self-contained HTML report (plots embedded) and print its path; takes the
        same selection and analysis options as `orze analyze`."""
        from orze.analysis.report import write_report

        layout = layout_for(root)
        a = _run_analysis(root, AnalysisOptions(after, since, window, seed, permutations, replays,
                                                tpe_trials, entropy_window, min_group_runs))
        try:
            path = write_report(a, out or layout.report)
        except OSError as e:
            raise fail(f"cannot write the report: {e}")
        print(path)

    @app.command("replicate")
    def replicate_cmd(
        top: int = typer.Option(..., "--top", help="How many of the best distinct configurations."),
        seeds: int = typer.Option(..., "--seeds", help="New seeds per configuration."),
        root: Optional[Path] = RootOption,
        seed: Optional[int] = typer.Option(None, "--seed", help="Seed for drawing the new seeds (default random)."),
    ) -> None:
        """Re-run the top configurations with new seeds (measures the noise floor)."""
        from orze.analysis import AnalysisError
        from orze.analysis.replicate import replicate_ideas

        layout = layout_for(root)
        space = _space(layout)
        if space is None:
            raise fail(f"{layout.space_config}: not found (run `orze init`)")
        try:
            ideas = replicate_ideas(read_rows(layout.leaderboard), space, top, seeds, seed)
        except AnalysisError as e:
            raise fail(str(e))
        path = submit_ideas(layout, ideas, origin="replicate")
        t = Table(title=f"{len(ideas)} replicate ideas → {path}")
        for c in ("parent", "seed"):
            t.add_column(c)
        for i in ideas:
            t.add_row(i["parent"], str(i["seed"]))
        console.print(t)
