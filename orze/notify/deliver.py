"""Delivering a message to one webhook: payload formats, and a background sender per webhook that
retries with exponential backoff.

`WebhookSender.submit` never blocks and never raises: it puts the message on a bounded heap that a
daemon thread drains, so a slow, hanging or failing endpoint costs the daemon nothing. Each
attempt has the webhook's timeout; a message that fails `attempts` times (or that is dropped
because too many are pending) is reported through `on_result`, which the notifier records where
`orze status` shows it. The URL is never logged or recorded (a Slack webhook URL is a credential);
errors name the webhook.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from orze.notify.config import WebhookConfig
from orze.notify.detect import Event

log = logging.getLogger(__name__)

SEVERITY_MARK = {"info": ":large_blue_circle:", "warning": ":warning:", "critical": ":rotating_light:"}


def slack_payload(event: Event, campaign: str, node: str) -> dict[str, Any]:
    """Slack's incoming-webhook format (also accepted by Mattermost, Rocket.Chat, Discord's /slack)."""
    mark = SEVERITY_MARK.get(event.severity, "")
    return {"text": f"{mark} *[orze · {campaign}] {event.title}*\n{event.text}",
            "username": "orze", "unfurl_links": False}


def json_payload(event: Event, campaign: str, node: str) -> dict[str, Any]:
    return {"source": "orze", "campaign": campaign, "sent_by": node, "at": time.time(), **event.as_dict()}


FORMATS = {"slack": slack_payload, "json": json_payload}


@dataclass
class Outcome:
    webhook: str
    event: Event
    ok: bool
    attempts: int
    error: str | None = None
    status: int | None = None


def post_json(url: str, payload: dict[str, Any], timeout_s: float) -> int:
    """POST the payload; returns the HTTP status (2xx) or raises OSError with a URL-free message."""
    data = json.dumps(payload, default=str).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "orze-notify"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(65536)
            return resp.status
    except urllib.error.HTTPError as e:
        raise OSError(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise OSError(f"cannot reach the endpoint: {e.reason}") from None
    except (TimeoutError, ConnectionError) as e:
        raise OSError(f"{type(e).__name__}: {e}") from None


def backoff_delay(attempt: int, base_s: float, max_s: float, jitter: float = 0.2,
                  rng: random.Random | None = None) -> float:
    """Delay before try `attempt + 1` after `attempt` failed: base * 2^(attempt-1), capped, ± jitter."""
    d = min(base_s * (2 ** max(attempt - 1, 0)), max_s)
    r = (rng or random).uniform(1 - jitter, 1 + jitter)
    return max(0.0, d * r)


class WebhookSender:
    def __init__(self, webhook: WebhookConfig, *, campaign: str, node: str, attempts: int,
                 backoff_s: float, max_backoff_s: float, max_pending: int,
                 on_result: Callable[[Outcome], None], post: Callable[..., int] = post_json):
        self.webhook, self.campaign, self.node = webhook, campaign, node
        self.attempts, self.backoff_s, self.max_backoff_s = attempts, backoff_s, max_backoff_s
        self.max_pending, self.on_result, self.post = max_pending, on_result, post
        self._heap: list[tuple[float, int, Event, int]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._closed = False
        self._busy = False
        self._thread = threading.Thread(target=self._loop, name=f"orze-notify-{webhook.name}", daemon=True)
        self._thread.start()

    def submit(self, event: Event) -> bool:
        """Queue a message (never blocks); False (and reported as dropped) when too many are pending."""
        with self._cv:
            if self._closed:
                return False
            if len(self._heap) >= self.max_pending:
                full = True
            else:
                full = False
                heapq.heappush(self._heap, (time.monotonic(), next(self._seq), event, 0))
                self._cv.notify()
        if full:
            self._report(Outcome(self.webhook.name, event, False, 0,
                                 f"dropped: {self.max_pending} messages already pending"))
        return not full

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._heap) + (1 if self._busy else 0)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop after giving due messages up to `timeout_s` (the process is exiting)."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while (self._busy or any(due <= time.monotonic() for due, *_ in self._heap)) \
                    and time.monotonic() < deadline:
                self._cv.wait(0.05)
            self._closed = True
            left, self._heap = self._heap, []
            self._cv.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
        for _, _, event, tried in left:   # waiting for a retry when the process stops: say so
            self._report(Outcome(self.webhook.name, event, False, max(tried, 1),
                                 f"not delivered: stopped before try {tried + 1} of {self.attempts}"))

    def _report(self, outcome: Outcome) -> None:
        try:
            self.on_result(outcome)
        except Exception:  # recording a result must never kill the sender
            log.exception("notify: recording the result for webhook %s failed", self.webhook.name)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                if self._closed:
                    return
                _, _, event, tried = heapq.heappop(self._heap)
                self._busy = True
            try:
                self._attempt(event, tried + 1)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _attempt(self, event: Event, attempt: int) -> None:
        url = self.webhook.resolve_url()
        if url is None:
            self._report(Outcome(self.webhook.name, event, False, attempt,
                                 f"environment variable {self.webhook.url_env} is not set"))
            return
        try:
            payload = FORMATS[self.webhook.format](event, self.campaign, self.node)
            status = self.post(url, payload, self.webhook.timeout_s)
            self._report(Outcome(self.webhook.name, event, True, attempt, status=status))
            return
        except Exception as e:  # any failure of one try is retried; never raised
            error = str(e) or type(e).__name__
        if attempt < self.attempts:
            delay = backoff_delay(attempt, self.backoff_s, self.max_backoff_s)
            log.info("notify: webhook %s failed (%s); try %d of %d in %.1fs", self.webhook.name, error,
                     attempt + 1, self.attempts, delay)
            with self._cv:
                closed = self._closed
                if not closed:
                    heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), event, attempt))
                    self._cv.notify()
            if closed:
                self._report(Outcome(self.webhook.name, event, False, attempt,
                                     f"{error}; not retried: stopped before try {attempt + 1} of {self.attempts}"))
            return
        log.warning("notify: webhook %s failed %d times for %s (%s); giving up", self.webhook.name,
                    attempt, event.key, error)
        self._report(Outcome(self.webhook.name, event, False, attempt, error))
