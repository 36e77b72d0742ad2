"""Campaign analysis: pure functions over a pandas DataFrame of leaderboard rows.

Each module has one job: `frame` (selecting the rows that count), `convergence` (best-so-far and its
fits), `variance` (ANOVA decompositions), `exploration` (entropy, JSD, innovation rate), `baselines`
(random-order and TPE replays of the same pool), `noise` (replicated configurations), `summary`
(everything at once, JSON-ready) and `report` (the HTML report). Only finished runs with a numeric
validation `metric` count, and `test_metric` is never read by anything that selects or ranks.
"""

from orze.analysis.frame import AnalysisError, done_runs, load_frame, restrict
from orze.analysis.noise import replicate_stats, replicate_summary

__all__ = ["AnalysisError", "done_runs", "load_frame", "restrict", "replicate_summary", "replicate_stats"]
