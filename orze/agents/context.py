"""What an agent knows about the campaign, and the prompt the LLM policies see.

`read_history(layout, space, rules)` gathers plain data from the research directory:
  - leaderboard rows (runs/leaderboard.jsonl),
  - pending configs: runs/inbox/*.yaml (not yet admitted), runs/queue/*.json (their `config`) and
    claimed runs without a result (runs/exp/<id>/idea.json or config.yaml),
  - failures: rows with status failed/misconfigured, from the leaderboard and from
    runs/exp/*/result.json files the leaderboard does not hold yet.

`render_prompt(template, history, …)` fills prompts/research.md's placeholders —
{{leaderboard}} (top 20 by the validation metric), {{recent}} (backbone and encoder frequencies),
{{failures}} (last 10), {{pruned}} (runs the pruner stopped, and at which epoch), {{space}},
{{rules}}, {{n}}, {{agent}}, {{metric}}, {{leader}}, {{total_runs}} — and fits the result into a
token budget by shrinking sections in a fixed order (each shrunk section says so in a note). Token counts are estimated as characters / 3.5, which
over-counts English and YAML for the Claude and Gemini tokenisers, so the budget is conservative.
Test metrics are never read here: only `metric` (validation) is rendered.
"""

from __future__ import annotations

import heapq
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from orze.agents.base import History
from orze.agents.rules import Rules, render_rules
from orze.layout import RUN_CONFIG, RUN_IDEA, RUN_RESULT, Layout
from orze.space import Space, check_idea
from orze.store.atomic import read_json_or_none
from orze.store.leaderboard import iter_rows, metric_sign, same_metric

FAILED = ("failed", "misconfigured")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")
CHARS_PER_TOKEN = 3.5


class PromptError(ValueError):
    """The prompt template is missing or names an unknown placeholder, or the budget is too small."""


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# ---------------------------------------------------------------------------- history
def available_backbones(layout: Layout) -> set[str] | None:
    """Backbones with a complete feature store (features/<b>/meta.json); None when the store holds
    none at all (features not extracted yet: nothing is ruled out)."""
    try:
        names = {e.name for e in os.scandir(layout.features)
                 if e.is_dir() and (Path(e.path) / "meta.json").is_file()}
    except FileNotFoundError:
        return None
    return names or None


def _config_of(obj: Any) -> dict[str, Any] | None:
    if isinstance(obj, dict):
        inner = obj.get("config")
        if isinstance(inner, dict):
            return inner
        return obj
    return None


def read_pending(layout: Layout, finished_ids: set[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if layout.queue.is_dir():
        for p in sorted(layout.queue.glob("*.json")):
            cfg = _config_of(read_json_or_none(p, expect=None))  # None: renamed away by a daemon
            if cfg:
                out.append(cfg)
    if layout.exp.is_dir():
        with os.scandir(layout.exp) as it:
            for entry in it:
                if entry.name in finished_ids or not entry.is_dir():
                    continue
                d = Path(entry.path)
                if (d / RUN_RESULT).exists():
                    continue
                cfg = None
                try:
                    if (d / RUN_IDEA).exists():
                        cfg = _config_of(read_json_or_none(d / RUN_IDEA, expect=None))
                    elif (d / RUN_CONFIG).exists():
                        cfg = _config_of(yaml.safe_load((d / RUN_CONFIG).read_text(encoding="utf-8")))
                except (OSError, ValueError, yaml.YAMLError):
                    cfg = None
                if cfg:
                    out.append(cfg)
    return out


def read_inbox(layout: Layout, space: Space) -> list[dict[str, Any]]:
    """Canonical configs of ideas waiting in runs/inbox (submitted, not yet admitted)."""
    out: list[dict[str, Any]] = []
    if not layout.inbox.is_dir():
        return out
    for p in sorted(layout.inbox.glob("*.yaml")):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # taken by a daemon meanwhile, or not ours to judge
        for item in doc if isinstance(doc, list) else [doc]:
            check = check_idea(space, item)
            if check.ok:
                out.append(check.config)
    return out


def read_failures(layout: Layout, rows: list[dict[str, Any]], ids: set[str],
                  limit: int = 10) -> list[dict[str, Any]]:
    failed = [r for r in rows if r.get("status") in FAILED]
    if layout.exp.is_dir():
        with os.scandir(layout.exp) as it:
            for entry in it:
                if entry.name in ids:
                    continue
                res = read_json_or_none(Path(entry.path) / RUN_RESULT)
                if res is not None and res.get("status") in FAILED:
                    failed.append(res)
    failed.sort(key=lambda r: (r.get("finished_at") or 0, str(r.get("id"))))
    return failed[-limit:]


def read_history(layout: Layout, space: Space, rules: Rules | None = None,
                 metric_name: str = "val_ap", task: str = "binary") -> History:
    rows = list(iter_rows(layout.leaderboard))
    ids = {str(r.get("id")) for r in rows}
    rules = rules or Rules()
    pending = read_pending(layout, ids) + read_inbox(layout, space)
    return History(space=space, rows=rows, pending=pending,
                   failures=read_failures(layout, rows, ids),
                   rules=rules.model_dump(), rules_text=render_rules(rules), metric_name=metric_name,
                   task=str(task))


# ---------------------------------------------------------------------------- sections
def _label(v: Any) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v))
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


KEY_DIMS = ("pooling", "learning_rate", "batch_size", "epochs", "seq_len", "weight_decay", "dropout",
            "d_model", "num_layers")


def top_rows(rows: list[dict[str, Any]], k: int, metric_name: str | None = None) -> list[dict[str, Any]]:
    """The k best finished rows on `metric_name`, in its direction (orze.metrics)."""
    sign = metric_sign(metric_name)
    ok = (r for r in rows if r.get("status") == "done" and isinstance(r.get("metric"), (int, float))
          and same_metric(r, metric_name))
    return heapq.nsmallest(k, ok, key=lambda r: (-sign * float(r["metric"]), str(r["id"])))


def render_leaderboard(rows: list[dict[str, Any]], k: int, metric_name: str,
                       best: list[dict[str, Any]] | None = None, done: int | None = None) -> str:
    """The top k rows as a Markdown table; `best`/`done` may be passed in precomputed."""
    best = (best if best is not None else top_rows(rows, k, metric_name))[:k]
    if not best:
        return "(no finished experiments yet)"
    head = ["rank", metric_name, "id", "backbone", "encoder", "loss"] + list(KEY_DIMS)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(best, 1):
        c = r.get("config") or {}
        loss = _label(c.get("loss"))
        if c.get("loss") == "focal":
            loss += f" (γ={_label(c.get('focal_gamma'))})"
        elif c.get("loss") == "label_smoothing":
            loss += f" ({_label(c.get('label_smoothing'))})"
        cells = [str(i), f"{float(r['metric']):.4f}", str(r.get("id")), _label(c.get("backbone")),
                 _label(c.get("temporal_encoder")), loss] + [_label(c.get(d)) for d in KEY_DIMS]
        lines.append("| " + " | ".join(cells) + " |")
    if done is None:
        done = sum(1 for r in rows if r.get("status") == "done")
    if done > len(best):
        lines.append(f"(top {len(best)} of {done} finished experiments)")
    return "\n".join(lines)


def render_recent(rows: list[dict[str, Any]], pending: list[dict[str, Any]], window: int,
                  top: int) -> str:
    recent = [r.get("config") or {} for r in rows[-window:]] + list(pending)
    if not recent:
        return "(nothing tried yet)"
    out = [f"Last {min(window, len(rows))} finished runs plus {len(pending)} queued/running "
           f"({len(rows)} runs in total):"]
    for dim, title in (("backbone", "backbone"), ("temporal_encoder", "encoder")):
        counts = Counter(_label(c.get(dim)) for c in recent)
        items = counts.most_common()
        shown = ", ".join(f"{k} {v}" for k, v in items[:top])
        more = f", … {len(items) - top} more" if len(items) > top else ""
        out.append(f"- {title}: {shown}{more}")
    return "\n".join(out)


def render_failures(failures: list[dict[str, Any]], limit: int, width: int = 200) -> str:
    chosen = failures[-limit:] if limit else []
    if not failures:
        return "(no failures)"
    out = []
    for r in chosen:
        c = r.get("config") or {}
        err = " ".join(str(r.get("error") or "no error recorded").split())
        if len(err) > width:
            err = err[:width] + "…"
        out.append(f"- {r.get('id')} [{r.get('status')}] backbone={_label(c.get('backbone'))} "
                   f"encoder={_label(c.get('temporal_encoder'))}: {err}")
    if len(chosen) < len(failures):
        out.append(f"(… {len(failures) - len(chosen)} earlier failure(s) omitted to fit the budget)")
    return "\n".join(out)


def render_pruned(rows: list[dict[str, Any]], limit: int) -> str:
    """The runs the pruner stopped (docs/pruning.md): which, at which epoch of how many, and the
    best value they had reached, so a policy reads them as cut short against comparable runs at
    the same epoch, not as failures and not as final results."""
    pruned = [r for r in rows if r.get("status") == "pruned"]
    if not pruned:
        return "(no run was pruned)"
    out = [f"{len(pruned)} run(s) were stopped early because their validation metric trailed comparable "
           f"runs (same epochs and scheduler) at the same epoch; their metric is from a partial schedule."]
    for r in pruned[-limit:] if limit else []:
        c, p = r.get("config") or {}, r.get("pruned") or {}
        m = r.get("metric")
        out.append(f"- {r.get('id')} backbone={_label(c.get('backbone'))} encoder={_label(c.get('temporal_encoder'))} "
                   f"lr={_label(c.get('learning_rate'))}: stopped after epoch {p.get('stopped_after_epoch')} of "
                   f"{c.get('epochs')}, best so far {m:.4f}" if isinstance(m, (int, float)) else
                   f"- {r.get('id')}: stopped after epoch {p.get('stopped_after_epoch')} of {c.get('epochs')}")
    if limit < len(pruned):
        out.append(f"(… {len(pruned) - limit} earlier pruned run(s) omitted)")
    return "\n".join(out)


def render_space(space: Space, compact: bool = False) -> str:
    lines = []
    for name, d in space.dimensions.items():
        if not d.search:
            continue
        line = f"- {name}: {d.describe_allowed()}{' (log scale)' if d.log else ''}; default {d.default}"
        if d.when:
            line += "; only when " + ", ".join(
                f"{k} is {v if isinstance(v, str) else ' or '.join(map(str, v))}" for k, v in d.when.items())
        if d.help and not compact:
            line += f" — {d.help}"
        lines.append(line)
    for c in space.constraints:
        lines.append(f"- constraint: {c.divisible[0]} must be divisible by {c.divisible[1]}")
    return "\n".join(lines)


def _cut(text: str, chars: int | None) -> str:
    if chars is None or len(text) <= chars:
        return text
    return text[:chars].rstrip() + "\n(… truncated to fit the token budget)"


# The order in which sections give way when the prompt is over budget: each step is (section, level).
SHRINK_STEPS = [("failures", 5), ("pruned", 3), ("leaderboard", 10), ("recent", 5), ("failures", 2),
                ("pruned", 0),
                ("space", 1), ("leaderboard", 5), ("rules", 1500), ("failures", 0),
                ("leaderboard", 3), ("recent", 2), ("rules", 600), ("leaderboard", 1)]


def render_prompt(template: str, history: History, *, agent: str, n: int,
                  budget_tokens: int = 6000, recent_window: int = 50,
                  template_name: str = "prompts/research.md") -> str:
    known = {"leaderboard", "recent", "failures", "pruned", "space", "rules", "n", "agent", "metric", "leader",
             "total_runs", "direction", "task"}
    for name in PLACEHOLDER.findall(template):
        if name not in known:
            raise PromptError(f"{template_name}: unknown placeholder {{{{{name}}}}}; allowed: "
                              + ", ".join("{{%s}}" % k for k in sorted(known)))
    leader = history.leader()
    lc = (leader or {}).get("config") or {}
    fixed = {
        "n": str(n), "agent": agent, "metric": history.metric_name, "total_runs": str(len(history.rows)),
        "direction": f"{history.direction} is better", "task": f"{history.task} clip classification",
        "leader": (f"{leader['id']}: {history.metric_name}={float(leader['metric']):.4f}, backbone="
                   f"{_label(lc.get('backbone'))}, temporal_encoder={_label(lc.get('temporal_encoder'))}"
                   if leader else "(none yet)"),
    }
    best = top_rows(history.rows, 20, history.metric_name)  # computed once: the shrink steps only slice it
    done = sum(1 for r in history.rows if r.get("status") == "done")
    level: dict[str, Any] = {"leaderboard": 20, "recent": 12, "failures": 10, "pruned": 10, "space": 0,
                             "rules": None}

    def build() -> str:
        sections = {
            "leaderboard": render_leaderboard(history.rows, level["leaderboard"], history.metric_name,
                                              best, done),
            "recent": render_recent(history.rows, history.pending, recent_window, level["recent"]),
            "failures": render_failures(history.failures, level["failures"]),
            "pruned": render_pruned(history.rows, level["pruned"]),
            "space": render_space(history.space, compact=bool(level["space"])),
            "rules": _cut(history.rules_text, level["rules"]),
            **fixed,
        }
        if level["leaderboard"] < 20 and done:
            sections["leaderboard"] += f"\n(leaderboard shortened to the top {level['leaderboard']} to fit the token budget)"
        if level["recent"] < 12:
            sections["recent"] += "\n(frequencies shortened to fit the token budget)"
        if level["space"]:
            sections["space"] += "\n(help texts omitted to fit the token budget)"
        return PLACEHOLDER.sub(lambda m: sections[m.group(1)], template)

    prompt = build()
    for section, value in SHRINK_STEPS:
        if estimate_tokens(prompt) <= budget_tokens:
            return prompt
        level[section] = value
        prompt = build()
    if estimate_tokens(prompt) > budget_tokens:
        raise PromptError(f"the prompt needs at least {estimate_tokens(prompt)} tokens even with every "
                          f"section shortened; raise the agent's prompt_budget_tokens (now {budget_tokens})")
    return prompt


def load_template(layout: Layout) -> str:
    path = layout.research_prompt
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PromptError(f"{path}: not found (run `orze init` to create the default prompts)") from None
