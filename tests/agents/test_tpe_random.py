"""The offline policies with the real Optuna."""

import random

from optuna.trial import TrialState

from orze.agents.base import History
from orze.agents.policies.random_policy import RandomPolicy, sample_config
from orze.agents.policies.tpe import TPEPolicy, config_to_params, distributions, params_to_idea
from orze.space import check_idea

from .conftest import make_row


def history_with_signal(space, n=24):
    """Finished runs where siglip2 scores high and every other backbone low."""
    rng = random.Random(7)
    rows = []
    for i in range(n):
        c = sample_config(space, rng)
        c["backbone"] = ["siglip2", "convnext", "dinov2_b", "vjepa2"][i % 4]
        c["num_heads"] = 1
        metric = (0.85 if c["backbone"] == "siglip2" else 0.30) + rng.uniform(0, 0.05)
        rows.append(make_row(i, metric, c))
    return History(space=space, rows=rows)


def test_random_is_valid_and_deterministic(space):
    h = History(space=space)
    a = RandomPolicy(seed=5).propose(h, 6)
    b = RandomPolicy(seed=5).propose(h, 6)
    c = RandomPolicy(seed=6).propose(h, 6)
    assert a == b and a != c and len(a) == 6
    assert all(check_idea(space, i).ok for i in a)


def test_tpe_is_valid_and_deterministic(space):
    h = history_with_signal(space)
    a = TPEPolicy(seed=1).propose(h, 4)
    assert a == TPEPolicy(seed=1).propose(h, 4)
    assert a != TPEPolicy(seed=2).propose(h, 4)
    assert len(a) == 4 and all(check_idea(space, i).ok for i in a)


def test_tpe_learns_from_the_leaderboard(space):
    h = history_with_signal(space)
    picks = [TPEPolicy(seed=s).propose(h, 1)[0]["backbone"] for s in range(12)]
    # uniform sampling would give siglip2 about 2 times in 12
    assert picks.count("siglip2") >= 7, picks
    empty = [TPEPolicy(seed=s).propose(History(space=space), 1)[0]["backbone"] for s in range(12)]
    assert empty.count("siglip2") < 7


def test_tpe_history_becomes_trials_with_pending_as_running(space):
    h = history_with_signal(space, n=12)
    h.rows.append(make_row(99, None, {"backbone": "convnext"}, status="failed"))
    h.pending = [make_row(100 + i, None, {"backbone": "siglip2", "epochs": 30})["config"] for i in range(3)]
    study, _ = TPEPolicy(seed=0).build_study(h)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(TrialState.COMPLETE) == 12
    assert states.count(TrialState.FAIL) == 1
    assert states.count(TrialState.RUNNING) == 3
    best = max(r["metric"] for r in h.rows if r["metric"] is not None)
    assert study.best_value == best


def test_tpe_batch_is_spread_by_constant_liar(space):
    h = history_with_signal(space)
    batch = TPEPolicy(seed=3).propose(h, 5)
    fps = {tuple(sorted((k, str(v)) for k, v in check_idea(space, i).config.items())) for i in batch}
    assert len(fps) == 5


def test_fused_backbones_round_trip(space):
    row = make_row(1, 0.9, {"backbone": ["siglip2", "dinov2_b"], "fusion": "project_sum"})
    dists = distributions(space, ["dinov2_b+siglip2"])
    params = config_to_params(row["config"], dists)
    assert params["backbone"] == "dinov2_b+siglip2" and params["fusion"] == "project_sum"
    assert params_to_idea(params)["backbone"] == ["dinov2_b", "siglip2"]
    assert "fusion" not in config_to_params(make_row(2, 0.5, {})["config"], dists)
    h = History(space=space, rows=[row])
    study, d = TPEPolicy(seed=0).build_study(h)
    assert "dinov2_b+siglip2" in d["backbone"].choices and len(study.trials) == 1
