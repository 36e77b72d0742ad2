"""The `pruning:` section of configs/orze.yaml (docs/pruning.md).

Typed and closed like every section: an unknown key or a value out of range is an error naming
the field. `comparable_by` names dimensions of configs/space.yaml; the daemon checks them against
the space when it starts (orze.daemon.pruner), since this module does not read the space.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PruningConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="stop hopeless runs at an epoch boundary")
    rule: Literal["median", "successive_halving"] = Field(
        default="median", description="median: Optuna's PercentilePruner (MedianPruner at 50); "
                                      "successive_halving: Optuna's SuccessiveHalvingPruner (asynchronous)")
    warmup_epochs: int = Field(default=1, ge=0, description="epochs 1..N of a run are never judged")
    min_comparable: int = Field(
        default=4, ge=1, description="recorded comparable runs with a value at the epoch before any judgement")
    comparable_by: list[str] = Field(
        default_factory=lambda: ["epochs", "scheduler"],
        description="dimensions two runs must share to be compared (schedule shape at least)")
    percentile: float = Field(
        default=50.0, gt=0, lt=100, description="median rule: keep runs whose best so far is in the top "
                                                "`percentile` percent at this epoch (50: the median)")
    reduction_factor: int = Field(default=3, ge=2, description="successive halving: keep the top 1/η at each rung")
    min_resource: int = Field(default=1, ge=1, description="successive halving: epoch of the first rung")
    await_verdict_s: float = Field(
        default=2.0, ge=0, le=600,
        description="at an epoch the rule may prune at, the built-in worker waits up to this long for the "
                    "daemon's verdict before starting the next epoch (0: never waits; a stop then lands "
                    "one epoch late)")
