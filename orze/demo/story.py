"""The demo campaign's closing lines, computed from its leaderboard rows (never a canned sentence).

`campaign_story(rows, temporal)` is a pure function over leaderboard rows: the best finished run
per backbone, and whether the backbone the synthetic data gives a temporal signal (`temporal`, the
one orze.demo.synth builds with the strongest motion-change weight) leads the image backbones.
"""

from __future__ import annotations

import math
from typing import Any

from orze.demo.synth import BACKBONES


def temporal_backbone() -> str:
    """The synthetic backbone whose features carry the temporal (motion-change) signal."""
    return max(BACKBONES, key=lambda b: b.motion_delta).name


def _backbones(row: dict[str, Any]) -> list[str]:
    b = (row.get("config") or {}).get("backbone", row.get("backbone"))
    return [str(x) for x in b] if isinstance(b, list) else [str(b)] if b is not None else []


def best_per_backbone(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{backbone: {metric, id, runs}} over finished runs with a finite metric (a fused run counts
    for each backbone it uses), best first."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        m = r.get("metric")
        if r.get("status") != "done" or not isinstance(m, (int, float)) or not math.isfinite(m):
            continue
        for b in _backbones(r):
            cur = out.setdefault(b, {"metric": -math.inf, "id": None, "runs": 0})
            cur["runs"] += 1
            if m > cur["metric"]:
                cur["metric"], cur["id"] = float(m), r.get("id")
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["metric"]))


def campaign_story(rows: list[dict[str, Any]], temporal: str | None = None,
                   metric_name: str = "val_ap") -> list[str]:
    """The closing lines: best per backbone, and whether the temporal backbone leads."""
    temporal = temporal or temporal_backbone()
    best = best_per_backbone(rows)
    if not best:
        return ["No run finished with a metric; `orze status` says why."]
    lines = ["best " + metric_name + " per backbone: " +
             ", ".join(f"{b} {v['metric']:.3f} ({v['runs']} run{'s' if v['runs'] != 1 else ''})"
                       for b, v in best.items())]
    leader = next(iter(best))
    if temporal not in best:
        lines.append(f"The campaign never finished a {temporal} run, so it cannot tell whether the "
                     f"temporal video backbone beats the image ones; run more experiments (-n).")
    elif leader == temporal:
        image = [v["metric"] for b, v in best.items() if b != temporal]
        margin = f" by {best[temporal]['metric'] - max(image):.3f}" if image else ""
        lines.append(f"The search found the planted structure: the temporal video backbone {temporal} "
                     f"leads the image backbones{margin} (its best: {best[temporal]['id']}).")
    else:
        lines.append(f"The search has not found the planted structure yet: {leader} leads and "
                     f"{temporal} (the temporal video backbone) is at {best[temporal]['metric']:.3f}; "
                     f"run more experiments (-n).")
    return lines
