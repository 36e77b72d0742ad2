"""Agent settings: typed options per policy, the policy registry, and the one-way layering."""

import subprocess
import sys

import pytest

from orze.agent_config import AgentSpec, implementation, options_model, policies
from orze.config import ConfigError, load_project

from .conftest import REPO


def test_unknown_option_is_an_error_naming_agent_key_and_allowed(layout):
    layout.project_config.write_text(
        "agents:\n"
        "  - {name: rnd, policy: random}\n"
        "  - name: local1\n"
        "    policy: openai\n"
        "    options: {base_ulr: 'http://127.0.0.1:8000/v1', api_key_env: null}\n")
    with pytest.raises(ConfigError) as e:
        load_project(layout)
    msg = str(e.value)
    assert str(layout.project_config) in msg and "agents.1" in msg
    assert "agent 'local1'" in msg and "options.base_ulr: unknown option for policy 'openai'" in msg
    assert "allowed options: base_url" in msg and "stream" in msg


@pytest.mark.parametrize("options, fragment", [
    ({"timeout_s": "soon"}, "options.timeout_s"),
    ({"base_url": "127.0.0.1:8000"}, "not an http(s) URL"),
    ({"retries": 0}, "options.retries"),
])
def test_mistyped_option_is_an_error(options, fragment):
    with pytest.raises(ValueError, match="agent 'c1'") as e:
        AgentSpec(name="c1", policy="claude", options=options)
    assert fragment in str(e.value)


def test_offline_policies_have_their_own_options():
    with pytest.raises(ValueError, match="options.n_startup_trials: unknown option for policy 'random'"):
        AgentSpec(name="r", policy="random", options={"n_startup_trials": 3})
    assert AgentSpec(name="t", policy="tpe", options={"n_startup_trials": 3}).options.n_startup_trials == 3


def test_unknown_policy_names_the_registered_ones():
    with pytest.raises(ValueError, match="policy 'chatgpt' is not one of: claude, gemini, openai, random, tpe"):
        AgentSpec(name="x", policy="chatgpt")


def test_every_registered_policy_has_an_implementation():
    import importlib
    assert policies() == ("claude", "gemini", "openai", "random", "tpe")
    for name in policies():
        module, _, attr = implementation(name).partition(":")
        assert callable(getattr(importlib.import_module(module), attr))
        assert options_model(name).model_config["extra"] == "forbid"


def test_shipped_config_loads():
    from orze.layout import Layout
    project = load_project(Layout.at(REPO))
    assert [a.policy for a in project.agents] == ["random"]
    assert project.agents[0].options.subspace["d_model"] == 32


def test_configuration_does_not_import_the_agents():
    code = ("import sys, orze.config; bad = [m for m in sys.modules if m.startswith('orze.agents')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_typed_options_survive_a_dump_and_reload():
    spec = AgentSpec(name="l", policy="openai", options={"stream": True, "api_key_env": None})
    again = AgentSpec.model_validate(spec.model_dump())
    assert again.options.stream is True and again.options.api_key_env is None
