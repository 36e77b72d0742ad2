"""The `tpe` policy: Optuna's TPE sampler over the configuration space.

Every `propose` builds a fresh in-memory study from the research directory's history, so any number
of processes (and restarts) agree on what has been tried:
  - finished runs (status done) → COMPLETE trials with their validation metric (maximised),
  - failed/misconfigured runs → FAIL trials (TPE keeps them out of the good/bad split),
  - queued and running configs → RUNNING trials; with `constant_liar` TPE treats them as if they
    had scored badly, so two agents (or one agent's consecutive asks) do not pile onto one point.
Ideas asked within one call stay RUNNING until the call ends, so a batch is also spread out.

Search dimensions follow the space (`search: true`), in the same order and with the same `when`
conditions as the random policy; a config that breaks a constraint (d_model % num_heads) is told
as FAIL and asked again. Fused backbones seen in the history become extra categorical choices
(written 'a+b'), so a good fusion can be exploited; TPE itself proposes single backbones or those.
Deterministic for a given seed and history.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from orze.agents.base import History
from orze.space import Space
from orze.space.validate import applies, check_idea

optuna.logging.set_verbosity(logging.WARNING)


def _fused_label(v: Any) -> Any:
    return "+".join(sorted(v)) if isinstance(v, list) else v


def distributions(space: Space, fused: list[str] = ()) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for name, d in space.dimensions.items():
        if not d.search:
            continue
        if d.choices is not None:
            choices = list(d.choices) + ([f for f in fused if f not in d.choices] if d.fusion > 1 else [])
            out[name] = CategoricalDistribution(choices)
        elif d.type == "int":
            out[name] = IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            out[name] = FloatDistribution(float(d.low), float(d.high), log=d.log)
    return out


def _ordered(space: Space) -> list[str]:
    return [d.name for d in sorted(space.dimensions.values(), key=lambda d: bool(d.when)) if d.search]


def config_to_params(config: dict[str, Any], dists: dict[str, BaseDistribution]) -> dict[str, Any] | None:
    """The trial params of a canonical config, or None when it lies outside the distributions."""
    params = {}
    for name, dist in dists.items():
        if name not in config:
            continue  # a conditional dimension that does not apply here
        v = _fused_label(config[name])
        if isinstance(dist, CategoricalDistribution):
            if v not in dist.choices:
                return None
        elif isinstance(v, bool) or not isinstance(v, (int, float)) or not dist._contains(
                dist.to_internal_repr(v)):
            return None
        params[name] = v
    return params


def params_to_idea(params: dict[str, Any]) -> dict[str, Any]:
    idea = dict(params)
    b = idea.get("backbone")
    if isinstance(b, str) and "+" in b:
        idea["backbone"] = b.split("+")
    return idea


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def _curve(row: dict[str, Any]) -> dict[int, float]:
    """A pruned row's curve as Optuna's intermediate values (epoch → metric; non-finite left out)."""
    values = row.get("curve") if isinstance(row.get("curve"), list) else []
    return {e: float(v) for e, v in enumerate(values, 1)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class TPEPolicy:
    name = "tpe"
    source = "tpe"

    def __init__(self, seed: int = 0, n_startup_trials: int = 10, max_tries: int = 50):
        self.seed = seed
        self.n_startup_trials = n_startup_trials
        self.max_tries = max_tries

    def build_study(self, history: History) -> tuple[optuna.Study, dict[str, BaseDistribution]]:
        space = history.space
        fused = sorted({_fused_label(r["config"]["backbone"]) for r in history.rows
                        if isinstance((r.get("config") or {}).get("backbone"), list)})
        dists = distributions(space, fused)
        trials = []
        for r in history.rows:
            params = config_to_params(r.get("config") or {}, dists)
            if params is None:
                continue
            sub = {k: dists[k] for k in params}
            if r.get("status") == "done" and isinstance(r.get("metric"), (int, float)):
                trials.append(create_trial(params=params, distributions=sub, value=float(r["metric"])))
            elif r.get("status") == "pruned":
                # stopped early by the pruner: Optuna's PRUNED, with the curve it had (TPE ranks
                # pruned trials by their intermediate values, below every completed one)
                trials.append(create_trial(params=params, distributions=sub, state=TrialState.PRUNED,
                                           intermediate_values=_curve(r)))
            elif r.get("status") in ("failed", "misconfigured"):
                trials.append(create_trial(params=params, distributions=sub, state=TrialState.FAIL))
        for cfg in history.pending:
            params = config_to_params(cfg, dists)
            if params is not None:
                trials.append(create_trial(params=params, distributions={k: dists[k] for k in params},
                                           state=TrialState.RUNNING))
        sampler = optuna.samplers.TPESampler(seed=self.seed + len(trials), constant_liar=True,
                                             n_startup_trials=self.n_startup_trials)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        if trials:
            study.add_trials(trials)
        return study, dists

    def _ask(self, study: optuna.Study, space: Space, dists: dict[str, BaseDistribution]):
        trial = study.ask()
        params: dict[str, Any] = {}
        for name in _ordered(space):
            dim = space.dimensions[name]
            if not applies(dim, params_to_idea(params))[0]:
                continue
            params[name] = suggest(trial, name, dists[name])
        return trial, params

    def propose(self, history: History, n: int) -> list[dict[str, Any]]:
        study, dists = self.build_study(history)
        out: list[dict[str, Any]] = []
        tries = 0
        while len(out) < n and tries < self.max_tries * max(1, n):
            tries += 1
            trial, params = self._ask(study, history.space, dists)
            idea = params_to_idea(params)
            if check_idea(history.space, idea).ok:
                out.append(idea)  # stays RUNNING: the next ask in this batch avoids it
            else:
                study.tell(trial, state=TrialState.FAIL)
        return out


def build(spec, layout, **kw):
    """The registered builder (orze.agent_config): TPE with the agent's seed and options."""
    from orze.agents.base import SubspacePolicy

    policy = TPEPolicy(seed=spec.seed, n_startup_trials=spec.options.n_startup_trials)
    return SubspacePolicy(policy, spec.options.subspace) if spec.options.subspace else policy
