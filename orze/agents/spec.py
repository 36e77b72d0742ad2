"""An agent as declared in configs/orze.yaml under `agents:`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

POLICIES = ("claude", "gemini", "random", "tpe")


class AgentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    policy: Literal["claude", "gemini", "random", "tpe"]
    model: str | None = None
    ideas_per_cycle: int = Field(default=4, ge=1, le=50)
    queue_limit: int = Field(default=8, ge=1)
    interval_s: float = Field(default=2.0, ge=0.0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, ge=64)
    budget_tokens: int | None = Field(default=None, ge=0)
    budget_usd: float | None = Field(default=None, ge=0)
    max_ideas: int | None = Field(default=None, ge=0, description="stop after proposing this many")
    seed: int = 0
    enabled: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
