"""Cross-run pruning: stop a run whose intermediate validation metric is hopeless against what
comparable runs had at the same epoch (docs/pruning.md).

settings.py  the `pruning:` section of configs/orze.yaml (typed, unknown keys are errors)
rules.py     the decision: a pure function of the run's curve, the comparable runs' curves and
             the settings (the median / percentile rule and successive halving, as Optuna's
             PercentilePruner and SuccessiveHalvingPruner decide them)
index.py     comparability (which runs a run is judged against) and the in-memory index of
             recorded runs' curves that the daemon folds leaderboard rows into
"""

from orze.pruning.rules import Curve, Verdict, decide, protected
from orze.pruning.settings import PruningConfig

__all__ = ["Curve", "PruningConfig", "Verdict", "decide", "protected"]
