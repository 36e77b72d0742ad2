"""Run-time configuration verification: did what ran match what was asked? (DESIGN.md §5)

Pure functions over plain data. `verify_run` compares the requested canonical configuration with
the effective configuration the worker read back from its built objects, and independently checks
the evaluation protocol:
- every requested dimension is reported and equal (floats to 1e-6 relative);
- the split hashes equal those the daemon computes itself from features/clips.csv, and the splits
  are disjoint by clip id (a leak changes a hash);
- selection used the validation split, and the chosen epoch is the validation optimum of the
  reported history (the test metric never chose anything);
- train and evaluation used the same sequence handling and length.
Any finding marks the run `misconfigured`, which keeps it off the ranking.
"""

from __future__ import annotations

import math
from typing import Any


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(float(a)) and math.isnan(float(b)):
            return True
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def config_diffs(requested: dict[str, Any], effective: dict[str, Any]) -> list[str]:
    out = []
    for key, want in requested.items():
        if key not in effective:
            out.append(f"{key}: requested {want!r}, not reported by the worker")
        elif not _same(want, effective[key]):
            out.append(f"{key}: requested {want!r}, ran {effective[key]!r}")
    return out


def protocol_findings(effective: dict[str, Any], metrics: dict[str, Any],
                      expected_hashes: dict[str, str] | None, sequences: bool = True) -> list[str]:
    out = []
    hashes = effective.get("split_hashes")
    if expected_hashes is not None:
        if not isinstance(hashes, dict):
            out.append("split: the worker reported no split hashes")
        else:
            for split, want in expected_hashes.items():
                if hashes.get(split) != want:
                    out.append(f"split: '{split}' clips differ from features/clips.csv "
                               f"(hash {hashes.get(split)} != {want})")
    sel = metrics.get("selection") or {}
    if sel.get("split") != "val":
        out.append(f"selection: made on split {sel.get('split')!r}; only 'val' may select")
    history = metrics.get("history") or []
    vals = [h.get("val_ap") for h in history]
    if history and all(isinstance(v, (int, float)) for v in vals):
        best = max(range(len(vals)), key=lambda i: (vals[i], -i)) + 1
        if sel.get("best_epoch") != best:
            out.append(f"selection: chose epoch {sel.get('best_epoch')} but the validation optimum "
                       f"is epoch {best}")
    seq = effective.get("sequence") or {}
    train = seq.get("train")
    evals = seq.get("eval") or {}
    if not sequences:
        pass
    elif not train or not evals:
        out.append("sequence: train/eval sequence handling not reported")
    else:
        for split, ev in evals.items():
            if ev != train:
                out.append(f"sequence: {split} evaluation uses {ev} but training used {train}")
    return out


def verify_run(requested: dict[str, Any], effective: dict[str, Any] | None,
               metrics: dict[str, Any], expected_hashes: dict[str, str] | None,
               require_effective: bool = True) -> list[str]:
    if effective is None:
        return ["effective_config.json missing: what ran cannot be verified"] if require_effective else []
    return config_diffs(requested, effective) + protocol_findings(
        effective, metrics, expected_hashes, sequences="seq_len" in requested)
