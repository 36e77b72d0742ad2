"""options.subspace narrows what an offline policy samples, and nothing else."""

import pytest

from orze.agent_config import AgentSpec
from orze.agents.base import History, restrict_space
from orze.agents.policies import make_policy
from orze.layout import Layout
from orze.space import check_idea


@pytest.mark.parametrize("policy", ["random", "tpe"])
def test_policy_samples_inside_subspace(tmp_path, default_space, policy):
    spec = AgentSpec(name="a", policy=policy, seed=3,
                     options={"subspace": {"d_model": 32, "epochs": [5, 10], "learning_rate": {"low": 1e-4, "high": 2e-4}}})
    ideas = make_policy(spec, Layout.at(tmp_path)).propose(History(space=default_space), 12)
    assert len(ideas) == 12
    for idea in ideas:
        assert check_idea(default_space, idea).ok
        assert idea["d_model"] == 32 and idea["epochs"] in (5, 10)
        assert 1e-4 <= float(idea["learning_rate"]) <= 2e-4
    assert len({i["temporal_encoder"] for i in ideas}) > 1  # other dimensions still explored


@pytest.mark.parametrize("subspace, needle", [
    ({"d_modl": 32}, "unknown dimension 'd_modl'"),
    ({"epochs": [7]}, "options.subspace.epochs: 7 is not allowed"),
    ({"learning_rate": {"low": 1.0}}, "options.subspace.learning_rate: 1.0 is out of range"),
])
def test_invalid_subspace_is_a_clear_error(default_space, subspace, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        restrict_space(default_space, subspace)
