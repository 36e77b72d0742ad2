import pytest
import yaml
from pydantic import ValidationError

from orze.agents.sweeps import SweepConfig, SweepRule, SweepRunner, expand
from orze.space import check_idea, fingerprint
from orze.store.leaderboard import append_row

from .conftest import make_row


def test_expand_lr_grid_and_focal_gamma(space):
    base = make_row(1, 0.9, {"loss": "focal", "focal_gamma": 2.0, "learning_rate": 4e-4})
    ideas = expand(base, space, SweepConfig(per_base=4))
    assert [(i["learning_rate"], i["focal_gamma"]) for i in ideas] == [
        (2e-4, 2.0), (8e-4, 2.0), (4e-4, 1.5), (4e-4, 2.5)]
    for i in ideas:
        assert i["source"] == "sweep" and i["parent"] == "run-000001" and i["agent"] == "sweeps"
        assert check_idea(space, i).ok
    assert len({fingerprint(check_idea(space, i).config) for i in ideas}) == 4


def test_expand_skips_out_of_range_inapplicable_and_identical(space):
    base = make_row(2, 0.9, {"loss": "bce", "learning_rate": 1e-2, "dropout": 0.0})
    cfg = SweepConfig(per_base=10, rules=[
        SweepRule(dim="learning_rate", factors=[0.5, 2.0]),      # ×2 is out of range
        SweepRule(dim="focal_gamma", deltas=[0.5]),               # not a focal run
        SweepRule(dim="dropout", deltas=[-0.1, 0.1, 0.0]),        # -0.1 out of range, 0.0 = base
        SweepRule(dim="learning_rate", values=[5e-3])])           # same as ×0.5: a sibling
    ideas = expand(base, space, cfg)
    assert [(i["learning_rate"], i["dropout"]) for i in ideas] == [(5e-3, 0.0), (1e-2, 0.1)]


def test_sweep_config_is_validated(space):
    with pytest.raises(ValidationError):
        SweepRule(dim="learning_rate", factors=[0.5], deltas=[0.1])
    with pytest.raises(ValueError, match=r"sweeps.rules\[0\].dim: unknown dimension 'lr'"):
        SweepConfig(rules=[SweepRule(dim="lr", factors=[2])]).check_against(space)


def test_runner_expands_each_top_k_base_once_across_nodes(layout, space):
    cfg = SweepConfig(top_k=2, per_base=2, max_total=100, interval_s=0)
    for i, m in enumerate([0.5, 0.9, 0.7, 0.8]):
        append_row(layout, make_row(i, m, {"learning_rate": 1e-3, "epochs": [5, 10, 15, 20][i]},
                                    test_metric=1.0 - m))   # test metric inverted: must be ignored
    a, b = SweepRunner(layout, cfg, space), SweepRunner(layout, cfg, space)
    first = a.tick(force=True)
    assert sorted({i["parent"] for i in first}) == ["run-000001", "run-000003"]
    assert len(first) == 4
    assert b.tick(force=True) == []                      # another node: nothing left to do
    ideas = [x for p in layout.inbox.glob("*.yaml") for x in yaml.safe_load(p.read_text())]
    assert len(ideas) == 4
    append_row(layout, make_row(9, 0.95, {"learning_rate": 2e-3}))   # a new top run
    new = b.tick(force=True)
    assert {i["parent"] for i in new} == {"run-000009"}


def test_runner_total_cap(layout, space):
    cfg = SweepConfig(top_k=3, per_base=4, max_total=5, interval_s=0)
    for i in range(3):
        append_row(layout, make_row(i, 0.9 - i / 10, {"epochs": [5, 10, 15][i]}))
    out = SweepRunner(layout, cfg, space).tick(force=True)
    assert len(out) == 5
    assert SweepRunner(layout, cfg, space).tick(force=True) == []


def test_runner_skips_variants_already_run_and_reports_pending(layout, space):
    cfg = SweepConfig(top_k=1, per_base=2, max_total=10, interval_s=0,
                      rules=[SweepRule(dim="learning_rate", factors=[0.5, 2.0, 4.0])])
    append_row(layout, make_row(1, 0.9, {"learning_rate": 1e-3}))
    append_row(layout, make_row(2, 0.5, {"learning_rate": 5e-4}))     # = the ×0.5 variant, already run
    runner = SweepRunner(layout, cfg, space)
    assert runner.pending()
    out = runner.tick(force=True)
    assert sorted(i["learning_rate"] for i in out) == [2e-3, 4e-3]     # ×0.5 skipped: it ran
    assert not runner.pending()
    from orze.agents.sweeps import summary
    assert summary(layout) == {"bases": 1, "ideas": 2}
