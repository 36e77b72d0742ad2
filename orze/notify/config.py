"""The `notify:` section of configs/orze.yaml: where notifications go and what triggers them.

Every key is checked (extra="forbid"), so a misspelt event name or setting is an error naming the
field, never a notification that silently never comes. A webhook's URL is a secret (a Slack
incoming-webhook URL is a bearer credential): prefer `url_env`, and Orze never logs either, only the
webhook's `name`.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EventKind = Literal["new_best", "failure_spike", "misconfigured_spike", "node_lost", "agent_backoff",
                    "agent_budget", "plateau", "queue_idle", "disk_low"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookConfig(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", description="shown in logs and status")
    url: str | None = Field(default=None, description="the endpoint (a secret for Slack); or url_env")
    url_env: str | None = Field(default=None, description="environment variable holding the URL")
    format: Literal["slack", "json"] = Field(
        default="json", description="slack: {'text': …} (Slack, Mattermost, Discord /slack, Rocket.Chat); "
                                    "json: the event as a generic JSON object")
    events: list[EventKind] | None = Field(default=None, description="kinds sent here (default: all)")
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _one_url(self) -> "WebhookConfig":
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"webhook {self.name!r}: give exactly one of url or url_env")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.name!r}: url must start with http:// or https://")
        return self

    def resolve_url(self) -> str | None:
        """The URL, or None when url_env names an unset variable (reported, never sent)."""
        return self.url if self.url is not None else (os.environ.get(self.url_env or "") or None)

    def wants(self, kind: str) -> bool:
        return self.events is None or kind in self.events


class NotifyConfig(_Section):
    webhooks: list[WebhookConfig] = Field(default_factory=list, description="none: notifications are off")
    events: list[EventKind] = Field(default_factory=lambda: list(EVENT_KINDS),
                                    description="the kinds of event derived at all")
    poll_s: float = Field(default=10.0, gt=0, description="how often the daemon's tick looks at the files")
    failure_spike_count: int = Field(default=5, ge=1, description="failed (or misconfigured) runs …")
    failure_spike_window_min: float = Field(default=60.0, gt=0, description="… within this many minutes")
    node_lost_after_s: float = Field(default=300.0, gt=0, description="heartbeat older than this: lost")
    plateau_runs: int = Field(default=200, ge=1, description="finished runs without a new best")
    queue_idle_after_s: float = Field(default=600.0, ge=0, description="queue empty, every slot idle, this long")
    disk_min_free_gb: float = Field(default=5.0, ge=0, description="free space under runs/ below this")
    max_per_hour: int = Field(default=30, ge=1, description="messages per hour for the whole campaign")
    retry_attempts: int = Field(default=5, ge=1, description="tries per message before it is recorded failed")
    retry_backoff_s: float = Field(default=2.0, gt=0, description="first retry delay; doubles each try")
    retry_max_backoff_s: float = Field(default=300.0, gt=0)
    max_pending: int = Field(default=200, ge=1, description="queued messages; beyond, new ones are dropped")

    @model_validator(mode="after")
    def _unique_names(self) -> "NotifyConfig":
        names = [w.name for w in self.webhooks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"webhook names must be unique: {', '.join(dup)}")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.webhooks) and bool(self.events)
