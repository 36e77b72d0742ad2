"""The pruning decision is Optuna's on the same histories (median/percentile and successive
halving, both directions), and every gate of the settings changes what is decided."""

import math
import random

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from orze.pruning import Curve, PruningConfig, decide, protected
from orze.pruning.index import CurveIndex, comparable_key, row_curve

optuna.logging.set_verbosity(optuna.logging.WARNING)
DIST = {"x": FloatDistribution(0, 1)}


def _hist(rng, epochs, nan_rate=0.03):
    base, slope = rng.uniform(0.2, 0.7), rng.uniform(-0.01, 0.05)
    return [math.nan if rng.random() < nan_rate else round(base + slope * e + rng.gauss(0, 0.03), 3)
            for e in range(1, epochs + 1)]


def _trial(values, state, final=None):
    kw = {"value": final} if state == TrialState.COMPLETE else {}
    return create_trial(params={"x": 0.5}, distributions=DIST, state=state,
                        intermediate_values={e: v for e, v in enumerate(values, 1)}, **kw)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("percentile", [50.0, 25.0, 70.0])
def test_median_rule_is_optunas_percentile_pruner(direction, percentile):
    rng = random.Random(int(percentile) * 2 + (direction == "minimize"))
    checked = pruned = 0
    for case in range(120):
        warmup, m = rng.randint(0, 3), rng.randint(1, 6)
        others = []
        for _ in range(rng.randint(0, 12)):
            h = _hist(rng, rng.randint(2, 10))   # shorter ones: early-stopped runs
            others.append((h, rng.random() < 0.7))
        own = _hist(rng, rng.randint(1, 10))
        study = optuna.create_study(direction=direction)
        trials = [_trial(h, TrialState.COMPLETE if done else TrialState.PRUNED, final=0.5) for h, done in others]
        if trials:
            study.add_trials(trials)
        pruner = optuna.pruners.PercentilePruner(percentile, n_startup_trials=m, n_warmup_steps=warmup + 1,
                                                 n_min_trials=m)
        want = pruner.prune(study, _trial(own, TrialState.RUNNING))
        s = PruningConfig(rule="median", warmup_epochs=warmup, min_comparable=m, percentile=percentile)
        got = decide(own, [Curve(tuple(h), completed=done) for h, done in others], s,
                     "max" if direction == "maximize" else "min")
        assert got.prune == want, (case, own, others, got)
        checked += 1
        pruned += want
    assert 3 <= pruned <= checked - 10   # the comparison covers both outcomes


def test_median_pruner_is_percentile_50():
    others = [Curve((0.5, 0.6, 0.7)), Curve((0.4, 0.5, 0.6)), Curve((0.3, 0.4, 0.5))]
    s = PruningConfig(warmup_epochs=0, min_comparable=3)
    study = optuna.create_study(direction="maximize")
    study.add_trials([_trial(list(c.values), TrialState.COMPLETE, 0.5) for c in others])
    for own in ([0.45, 0.49], [0.55, 0.51], [0.2]):
        want = optuna.pruners.MedianPruner(n_startup_trials=3, n_min_trials=3).prune(
            study, _trial(own, TrialState.RUNNING))
        assert decide(own, others, s).prune == want


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("eta,min_resource", [(3, 1), (2, 1), (2, 2)])
def test_successive_halving_is_optunas(direction, eta, min_resource):
    """A sequential campaign under Optuna's SuccessiveHalvingPruner: at every epoch of every
    trial, our decision from the previous trials' curves equals Optuna's should_prune()."""
    rng = random.Random(eta * 10 + min_resource + (direction == "minimize"))
    s = PruningConfig(rule="successive_halving", warmup_epochs=0, min_comparable=1,
                      reduction_factor=eta, min_resource=min_resource)
    study = optuna.create_study(direction=direction, pruner=optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource, reduction_factor=eta, min_early_stopping_rate=0))
    seen: list[Curve] = []
    decisions = pruned = 0
    for _ in range(40):
        trial = study.ask()
        values = _hist(rng, 10, nan_rate=0.01)
        for e, v in enumerate(values, 1):
            trial.report(v, e)
            want = trial.should_prune()
            got = decide(values[:e], seen, s, "max" if direction == "maximize" else "min")
            assert got.prune == want, (e, values, got)
            decisions += 1
            if want:
                study.tell(trial, state=TrialState.PRUNED)
                seen.append(Curve(tuple(values[:e]), completed=False))
                pruned += 1
                break
        else:
            study.tell(trial, values[-1])
            seen.append(Curve(tuple(values)))
    assert 5 < pruned < 40 and decisions > 45


def test_warmup_and_min_comparable_gate_the_decision():
    others = [Curve((0.8, 0.85, 0.9))] * 4
    bad = [0.1, 0.1, 0.1]
    base = PruningConfig(warmup_epochs=0, min_comparable=4)
    assert decide(bad[:1], others, base).prune
    assert not decide(bad[:1], others, base.model_copy(update={"warmup_epochs": 1})).prune
    assert decide(bad[:2], others, base.model_copy(update={"warmup_epochs": 1})).prune
    assert not decide(bad, others, base.model_copy(update={"min_comparable": 5})).prune
    # pruned comparable runs do not count for the median rule (as in Optuna) ...
    pruned_only = [Curve((0.8, 0.85), completed=False)] * 4
    assert not decide(bad[:2], pruned_only, base).prune
    # ... but do for successive halving, at their rungs
    sha = base.model_copy(update={"rule": "successive_halving", "reduction_factor": 2, "min_resource": 1})
    assert decide(bad[:1], pruned_only, sha).prune
    assert not decide(bad[:2], pruned_only, sha.model_copy(update={"min_resource": 3})).prune  # no rung at 2


def test_percentile_knob_changes_the_bar():
    others = [Curve((v,)) for v in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    s = PruningConfig(warmup_epochs=0, min_comparable=5)
    assert decide([0.45], others, s).prune                                          # below the median 0.5
    assert not decide([0.45], others, s.model_copy(update={"percentile": 60.0})).prune  # bar 0.42
    assert decide([0.45], others, s.model_copy(update={"percentile": 10.0})).prune


def test_direction_min_prunes_the_high_ones():
    others = [Curve((v, v)) for v in (0.1, 0.2, 0.3, 0.4, 0.5)]
    s = PruningConfig(warmup_epochs=0, min_comparable=5)
    assert decide([0.45, 0.45], others, s, "min").prune
    assert not decide([0.45, 0.45], others, s, "max").prune


def test_comparability_keys_and_the_index():
    idx = CurveIndex(["epochs", "scheduler", "backbone"])
    row = {"id": "a", "status": "done", "curve": [0.5, 0.6], "config": {"epochs": 5, "scheduler": "cosine",
                                                                         "backbone": "vjepa2", "lr": 1}}
    idx.add(row)
    idx.add(row)   # once per run id
    idx.add({**row, "id": "b", "config": {**row["config"], "epochs": 10}})
    idx.add({**row, "id": "c", "status": "failed"})
    idx.add({**row, "id": "d", "status": "misconfigured"})
    idx.add({**row, "id": "e", "status": "pruned", "curve": [0.1, 0.2, 0.3], "pruned": {"epoch": 1}})
    same = idx.comparable({"epochs": 5, "scheduler": "cosine", "backbone": "vjepa2", "lr": 9})
    assert [c.values for c in same] == [(0.5, 0.6), (0.1,)]          # cut where it was judged
    assert [c.completed for c in same] == [True, False]
    assert idx.comparable({"epochs": 5, "scheduler": "step", "backbone": "vjepa2"}) == []
    assert len(CurveIndex(["epochs"]).groups) == 0
    wide = CurveIndex(["epochs"])
    for r in (row, {**row, "id": "f", "config": {**row["config"], "backbone": "siglip2"}}):
        wide.add(r)
    assert len(wide.comparable({"epochs": 5})) == 2            # backbone not a key: compared
    assert comparable_key({"backbone": ["a", "b"]}, ["backbone"]) != comparable_key({"backbone": "a"}, ["backbone"])
    assert row_curve({"status": "done", "curve": None}) is None


def test_protected_ideas():
    assert protected({"prune": "never"}) == "prune: never"
    assert protected({"source": "replicate", "prune": "auto"}) == "a replicate"
    assert protected({"source": "llm"}) is None and protected({"prune": "auto"}) is None


def test_next_judgeable_epoch():
    from orze.pruning.rules import next_judgeable
    median = PruningConfig(warmup_epochs=2)
    assert [next_judgeable(median, e) for e in (0, 1, 2, 3, 7)] == [3, 3, 3, 4, 8]
    halving = PruningConfig(rule="successive_halving", warmup_epochs=0, reduction_factor=3, min_resource=1)
    assert [next_judgeable(halving, e) for e in (0, 1, 2, 3, 8, 9)] == [1, 3, 3, 9, 9, 27]
    late = PruningConfig(rule="successive_halving", warmup_epochs=4, reduction_factor=2, min_resource=2)
    assert [next_judgeable(late, e) for e in (0, 4, 8)] == [8, 8, 16]
    # it agrees with decide: no epoch before it can be pruned, whatever the runs compared with
    for s in (median, halving, late):
        comparable = [Curve((0.9,) * 40) for _ in range(6)]
        for after in range(12):
            nxt = next_judgeable(s, after)
            assert not any(decide([0.0] * e, comparable, s).prune for e in range(after + 1, nxt))
            assert decide([0.0] * nxt, comparable, s).prune
