"""Settings of the research agents and auto-sweeps: the `agents:` and `sweeps:` sections of
configs/orze.yaml.

This module sits below both `orze.config` (which loads the project file) and `orze.agents` (which
runs what is configured here): configuration never imports the agents, the agents import their
settings from here.

Policies are registered by name with `@register(name, impl="module:callable")`, which ties the
name to its typed `options:` model (pydantic, unknown keys forbidden) and to the callable that
builds the policy (`impl(spec, layout, **kw)`, imported only when an agent of that policy runs).
`policies()` — the names `policy:` accepts — is derived from the registry, so adding a policy is
one registered options model plus its implementation.

An unknown or mistyped key under an agent's `options:` (e.g. `base_ulr`) is an error at load time
that names the agent, the key and the keys its policy allows: a typo must never send a request,
with the real key, to a default endpoint.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from orze.space import Space


class PolicyOptions(BaseModel):
    """Base of every policy's `options:`; unknown keys are errors."""
    model_config = ConfigDict(extra="forbid")


_Opt = TypeVar("_Opt", bound=type[PolicyOptions])
_REGISTRY: dict[str, tuple[type[PolicyOptions], str]] = {}


def register(name: str, impl: str) -> Callable[[_Opt], _Opt]:
    """Register a policy: its name, its options model (the decorated class) and the dotted path
    `module:callable` of what builds it."""
    def deco(cls: _Opt) -> _Opt:
        if name in _REGISTRY:
            raise ValueError(f"policy {name!r} registered twice")
        _REGISTRY[name] = (cls, impl)
        return cls
    return deco


def policies() -> tuple[str, ...]:
    """Every registered policy name, sorted."""
    return tuple(sorted(_REGISTRY))


def options_model(policy: str) -> type[PolicyOptions]:
    return _REGISTRY[policy][0]


def implementation(policy: str) -> str:
    return _REGISTRY[policy][1]


# ---------------------------------------------------------------------------- offline policies
class OfflineOptions(PolicyOptions):
    subspace: dict[str, Any] | None = Field(
        default=None, description="narrow what the policy samples: dim → value, [choices] or {low, high}")


@register("random", impl="orze.agents.policies.random_policy:build")
class RandomOptions(OfflineOptions):
    pass


@register("tpe", impl="orze.agents.policies.tpe:build")
class TPEOptions(OfflineOptions):
    n_startup_trials: int = Field(default=10, ge=0, description="random trials before TPE models the history")


# ---------------------------------------------------------------------------- LLM policies
class LLMOptions(PolicyOptions):
    base_url: str | None = Field(default=None, description="the provider's endpoint (a local server, a proxy)")
    timeout_s: float = Field(default=120.0, gt=0, description="per request")
    retries: int = Field(default=4, ge=1, description="tries per call (429, 5xx, timeouts)")
    backoff_s: float = Field(default=2.0, ge=0, description="first retry delay; doubles per try")
    backoff_max_s: float = Field(default=60.0, ge=0, description="the retry delay's cap")
    max_retry_after_s: float = Field(
        default=300.0, ge=0, description="a provider's retry-after up to this is waited within the call; "
                                         "a longer one ends the cycle, and the next waits at least that long")
    prompt_budget_tokens: int = Field(default=6000, ge=256)
    recent_window: int = Field(default=50, ge=1, description="finished runs counted in {{recent}}")
    price_in_per_mtok: float | None = Field(default=None, ge=0, description="USD per million input tokens")
    price_out_per_mtok: float | None = Field(default=None, ge=0, description="USD per million output tokens")
    transcripts_keep: int = Field(default=500, ge=0, description="newest transcript files kept (0: none written)")

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.netloc:
            raise ValueError(f"base_url {v!r} is not an http(s) URL")
        return v.rstrip("/")

    @property
    def self_hosted(self) -> bool:
        """Whether the model runs on the group's own machines (priced at zero). Claude and Gemini
        run only at their providers: a local base_url is a proxy, still billed."""
        return False

    @property
    def is_local(self) -> bool:
        """Whether base_url points at this machine or a private network."""
        if not self.base_url:
            return False
        host = urlparse(self.base_url).hostname or ""
        if host == "localhost" or host.endswith(".local"):
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or ip.is_private or ip.is_link_local


@register("claude", impl="orze.agents.policies.claude:ClaudePolicy")
class ClaudeOptions(LLMOptions):
    pass


@register("gemini", impl="orze.agents.policies.gemini:GeminiPolicy")
class GeminiOptions(LLMOptions):
    pass


@register("openai", impl="orze.agents.policies.openai_policy:OpenAIPolicy")
class OpenAIOptions(LLMOptions):
    stream: bool = Field(default=False, description="stream the reply (server-sent events)")
    api_key_env: str | None = Field(
        default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the environment variable holding the key; null for a local server that needs none")

    @property
    def self_hosted(self) -> bool:
        """A base_url on this machine or a private network: vLLM, Ollama, llama.cpp (free)."""
        return self.is_local


# ---------------------------------------------------------------------------- an agent
def _format_options_error(agent: str, policy: str, e: ValidationError) -> str:
    allowed = ", ".join(options_model(policy).model_fields)
    parts = []
    for err in e.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"options.{key}: unknown option for policy '{policy}'")
        else:
            parts.append(f"options.{key}: {err['msg']}")
    return f"agent '{agent}': " + "; ".join(parts) + f" (allowed options: {allowed})"


class AgentSpec(BaseModel):
    """One entry under `agents:`."""
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    policy: str
    model: str | None = None
    ideas_per_cycle: int = Field(default=4, ge=1, le=50)
    queue_limit: int = Field(default=8, ge=1)
    interval_s: float = Field(default=2.0, ge=0.0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, ge=64)
    budget_tokens: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0)
    max_ideas: int | None = Field(default=None, ge=0, description="stop after submitting this many")
    seed: int = 0
    enabled: bool = True
    # A cycle fails when it errs or submits nothing. Consecutive failures wait
    # failure_backoff_s · 2^(k-1), capped; after pause_after_failures of them (or at once on a
    # permanent error: a rejected key, an unknown model) the agent pauses for pause_s.
    failure_backoff_s: float = Field(default=30.0, ge=0)
    failure_backoff_max_s: float = Field(default=1800.0, ge=0)
    pause_after_failures: int = Field(default=8, ge=1)
    pause_s: float = Field(default=6 * 3600.0, ge=0)
    # typed by `policy` (the validator below); dumped as that model, not the empty base
    options: SerializeAsAny[PolicyOptions] = Field(default_factory=PolicyOptions)

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("name", "?")
        policy = data.get("policy")
        if policy not in _REGISTRY:
            raise ValueError(f"agent '{name}': policy {policy!r} is not one of: {', '.join(policies())}")
        opts = data.get("options")
        model = options_model(policy)
        if isinstance(opts, model):
            return data
        if opts is None:
            opts = {}
        if isinstance(opts, PolicyOptions):
            opts = opts.model_dump(exclude_unset=True)
        if not isinstance(opts, dict):
            raise ValueError(f"agent '{name}': options must be a mapping of {policy} options")
        try:
            typed = model.model_validate(opts)
        except ValidationError as e:
            raise ValueError(_format_options_error(str(name), policy, e)) from None
        return {**data, "options": typed}


# ---------------------------------------------------------------------------- auto-sweeps
class SweepRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dim: str
    factors: list[float] | None = None
    deltas: list[float] | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> "SweepRule":
        given = [k for k in ("factors", "deltas", "values") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"sweep rule for '{self.dim}' needs exactly one of factors, deltas, values")
        return self

    def variants(self, value: Any) -> list[tuple[Any, str]]:
        if self.values:
            return [(v, f"{self.dim}={v}") for v in self.values]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return []
        if self.factors:
            return [(value * f, f"{self.dim}×{f:g}") for f in self.factors]
        return [(value + d, f"{self.dim}{d:+g}") for d in self.deltas or []]


def _default_rules() -> list[SweepRule]:
    return [SweepRule(dim="learning_rate", factors=[0.5, 2.0]),
            SweepRule(dim="focal_gamma", deltas=[-0.5, 0.5]),
            SweepRule(dim="dropout", deltas=[-0.1, 0.1])]


class SweepConfig(BaseModel):
    """The `sweeps:` section (see orze/agents/sweeps.py for what runs it)."""
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    top_k: int = Field(default=3, ge=1, description="a finished run among the K best becomes a base")
    per_base: int = Field(default=4, ge=1, description="at most this many variants of one base")
    max_total: int = Field(default=40, ge=0, description="at most this many sweep ideas in the campaign")
    interval_s: float = Field(default=30.0, ge=0, description="how often the leaderboard is looked at")
    rules: list[SweepRule] = Field(default_factory=_default_rules)

    def check_against(self, space: Space) -> None:
        for i, r in enumerate(self.rules):
            if r.dim not in space.dimensions:
                raise ValueError(f"sweeps.rules[{i}].dim: unknown dimension '{r.dim}'; allowed: "
                                 + ", ".join(space.dimensions))
