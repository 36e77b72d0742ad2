"""Retrying provider calls: 429, 5xx, 408 and timeouts/connection errors back off and retry;
anything else (a bad request, a wrong key) fails at once. The SDKs' own retries are switched off
so that this is the one policy, with its attempts counted in the ledger.

A provider's `retry-after` (seconds or an HTTP date; also `retry-after-ms`) is honoured: the next
try waits at least that long. A retry-after longer than `max_retry_after_s` is not waited inside
the call: the call fails with `ProviderError.retry_after` set and the agent's next cycle waits it.

`ProviderError` is what a policy raises after giving up; its message is already redacted and names
the endpoint. `permanent` marks errors that no retry can fix (401, 403, 404: a rejected key, a
model that does not exist): the agent pauses at once instead of backing off.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from orze.agents.keys import redact

T = TypeVar("T")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}
PERMANENT_STATUS = {401, 403, 404}


class ProviderError(RuntimeError):
    def __init__(self, message: str, attempts: int, retryable: bool, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(redact(message))
        self.attempts = attempts
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_STATUS


class Stopped(RuntimeError):
    """The agent was told to stop (its lease is gone) while it waited to retry; `attempts` tries
    were made before (they are ledgered as one failed call)."""

    def __init__(self, message: str, attempts: int = 0):
        super().__init__(message)
        self.attempts = attempts


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4          # total tries
    base_s: float = 1.0
    max_s: float = 30.0
    jitter: float = 0.25
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int) -> float:
        d = min(self.max_s, self.base_s * (2 ** attempt))
        return d * (1 + random.uniform(-self.jitter, self.jitter))


def status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    return None


def _headers(exc: BaseException) -> Any:
    resp = getattr(exc, "response", None)
    headers = getattr(resp, "headers", None)
    if headers is None:  # google-genai keeps the httpx response's headers elsewhere
        headers = getattr(getattr(exc, "details", None), "headers", None)
    return headers


def retry_after_of(exc: BaseException, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait (retry-after-ms, retry-after seconds or HTTP date)."""
    headers = _headers(exc)
    if headers is None:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(str(value)).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def endpoint_of(exc: BaseException) -> str | None:
    """The URL the failed request went to, where the SDK's exception carries it."""
    for holder in (exc, getattr(exc, "response", None)):
        req = getattr(holder, "request", None)
        url = getattr(req, "url", None)
        if url is not None:
            return str(url)
    return None


def is_retryable(exc: BaseException) -> bool:
    status = status_of(exc)
    if status is not None:
        return status in RETRY_STATUS or status >= 500
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    return any(w in names for w in ("Timeout", "Connect", "RemoteProtocol", "ReadError", "NetworkError"))


def describe(exc: BaseException, endpoint: str | None = None) -> str:
    status = status_of(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    where = endpoint_of(exc) or endpoint
    return redact(f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {text[:300]}"
                  + (f" (endpoint {where})" if where else ""))


def call_with_retry(fn: Callable[[], T], backoff: Backoff,
                    sleep: Callable[[float], None] = time.sleep, endpoint: str | None = None,
                    should_stop: Callable[[], bool] | None = None) -> tuple[T, int]:
    """(result, attempts). Raises ProviderError when a non-retryable error occurs, tries run out,
    or the provider asks for a wait longer than backoff.max_retry_after_s; Stopped when
    `should_stop` turns true before a retry."""
    last: BaseException | None = None
    last_wait: float | None = None
    for attempt in range(backoff.attempts):
        if should_stop is not None and should_stop():
            raise Stopped("stopped before a provider call", attempt)
        try:
            return fn(), attempt + 1
        except Exception as exc:  # noqa: BLE001 - classified below, never swallowed silently
            last = exc
            status = status_of(exc)
            if not is_retryable(exc):
                raise ProviderError(describe(exc, endpoint), attempt + 1, False, status) from None
            wait = retry_after_of(exc)
            last_wait = wait
            if wait is not None and wait > backoff.max_retry_after_s:
                raise ProviderError(f"the provider asked to retry after {wait:.0f}s: "
                                    f"{describe(exc, endpoint)}", attempt + 1, True, status,
                                    retry_after=wait) from None
            if attempt + 1 < backoff.attempts:
                sleep(max(backoff.delay(attempt), wait or 0.0))
    assert last is not None
    raise ProviderError(f"gave up after {backoff.attempts} attempts: {describe(last, endpoint)}",
                        backoff.attempts, True, status_of(last), retry_after=last_wait) from None
