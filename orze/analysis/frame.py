"""Which leaderboard rows an analysis sees, in which order.

`done_runs(frame)` keeps rows with status "done" and a finite numeric `metric`, sorted by `seq`
(completion order). `restrict` narrows them to the runs after a given run (e.g. after a bug fix),
since a time, or the last N. Everything here is pure over DataFrames except `load_frame`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from orze.layout import Layout
from orze.store.leaderboard import RANKED_STATUS, ROW_KEYS, metric_sign, read_rows, rows_to_frame, same_metric


class AnalysisError(ValueError):
    """The data cannot support the requested analysis; the message says why and what would."""


# Columns of a frame that are not configuration dimensions: the row schema, and fields the daemon
# records beside it (history, resources, near-duplicate flags). Only a fallback: frames made by
# `frame_from_rows` know their config columns exactly (attrs["config_columns"]).
NON_CONFIG = frozenset(ROW_KEYS) | {"seq", "history", "near_duplicate_of", "peak_memory_mb",
                                    "seconds_per_epoch", "startup_s"}
CONFIG_ATTR = "config_columns"


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """rows_to_frame, remembering which columns came from the rows' `config` mappings."""
    frame = rows_to_frame(rows)
    keys: set[str] = set()
    for r in rows:
        keys.update((r.get("config") or {}).keys())
    frame.attrs[CONFIG_ATTR] = sorted(keys)
    return frame


def load_frame(layout: Layout) -> pd.DataFrame:
    """All leaderboard rows as a frame (see orze.store.leaderboard.rows_to_frame)."""
    rows = read_rows(layout.leaderboard)
    if not rows:
        raise AnalysisError(f"{layout.leaderboard}: no finished experiments yet (the leaderboard is "
                            "empty or missing); run some experiments first")
    return frame_from_rows(rows)


METRIC_SIGN_ATTR = "metric_sign"


def done_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with a finite numeric validation metric, in completion order.

    The metric is oriented so that higher is better everywhere in the analysis: a minimised
    metric (orze.metrics: log_loss) is negated, and attrs["metric_sign"] says so (-1). Only rows
    on the latest row's metric are kept (a campaign whose task.metric changed is analysed on the
    new one)."""
    if frame is None or len(frame) == 0 or "metric" not in frame or "status" not in frame:
        return pd.DataFrame(columns=list(ROW_KEYS) + ["seq"])
    metric = pd.to_numeric(frame["metric"], errors="coerce")
    keep = (frame["status"] == RANKED_STATUS) & np.isfinite(metric)
    name = None
    if "metric_name" in frame and frame.loc[keep, "metric_name"].notna().any():
        name = str(frame.loc[keep, "metric_name"].dropna().iloc[-1])
        keep &= frame["metric_name"].map(lambda n: same_metric({"metric_name": n}, name))
    sign = metric_sign(name)
    out = frame.loc[keep].copy()
    out.attrs = {**frame.attrs, METRIC_SIGN_ATTR: sign}
    out["metric"] = sign * metric[keep].astype(float)
    if "seq" not in out:
        out["seq"] = np.arange(len(out))
    return out.sort_values("seq", kind="stable").reset_index(drop=True)


def parse_since(text: str) -> float:
    """An ISO-8601 time (a date, or date and time; UTC unless it says otherwise) as unix seconds."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AnalysisError(f"--since: {text!r} is not an ISO-8601 time "
                            "(e.g. 2026-02-27 or 2026-02-27T08:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def restrict(done: pd.DataFrame, *, after: str | None = None, since: float | None = None,
             window: int | None = None) -> pd.DataFrame:
    """Runs completed after run `after`, finished at or after unix time `since`, and/or the last
    `window` of them (applied in that order). Raises AnalysisError naming the option on bad input."""
    out = done
    if after is not None:
        if "id" not in out or not (out["id"] == after).any():
            raise AnalysisError(f"--after: no finished run with id {after!r} on the leaderboard")
        cut = out.loc[out["id"] == after, "seq"].iloc[0]
        out = out[out["seq"] > cut]
    if since is not None:
        finished = pd.to_numeric(out.get("finished_at", pd.Series(np.nan, index=out.index)),
                                 errors="coerce")
        out = out[finished >= since]
    if window is not None:
        if window < 1:
            raise AnalysisError(f"--window: must be a positive number of runs, got {window}")
        out = out.tail(window)
    return out.reset_index(drop=True)


def config_columns(frame: pd.DataFrame, dims: Any = None) -> list[str]:
    """The configuration-dimension columns: the space's dimensions present in the frame when
    given, else the config keys recorded by `frame_from_rows`, else every column that is not a
    known leaderboard field."""
    if dims is None:
        dims = frame.attrs.get(CONFIG_ATTR)
    if dims is not None:
        return [d for d in dims if d in frame.columns]
    return [c for c in frame.columns if c not in NON_CONFIG]


def cell_labels(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string label per row for the combination of `columns` (missing values as '-')."""
    if not columns:
        return pd.Series(["all"] * len(frame), index=frame.index, dtype=object)
    parts = [frame[c].astype(object).where(frame[c].notna(), "-").astype(str) for c in columns]
    label = parts[0]
    for p in parts[1:]:
        label = label + "|" + p
    return label
