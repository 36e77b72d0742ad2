"""Retrying provider calls: 429, 5xx, 408 and timeouts/connection errors back off and retry;
anything else (a bad request, a wrong key) fails at once. Both SDKs' own retries are switched off
so that this is the one policy, with its attempts counted in the ledger.

`ProviderError` is what a policy raises after giving up; its message is already redacted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from orze.agents.keys import redact

T = TypeVar("T")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504, 529}


class ProviderError(RuntimeError):
    def __init__(self, message: str, attempts: int, retryable: bool):
        super().__init__(redact(message))
        self.attempts = attempts
        self.retryable = retryable


@dataclass(frozen=True)
class Backoff:
    attempts: int = 4          # total tries
    base_s: float = 1.0
    max_s: float = 30.0
    jitter: float = 0.25

    def delay(self, attempt: int) -> float:
        d = min(self.max_s, self.base_s * (2 ** attempt))
        return d * (1 + random.uniform(-self.jitter, self.jitter))


def status_of(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    return None


def is_retryable(exc: BaseException) -> bool:
    status = status_of(exc)
    if status is not None:
        return status in RETRY_STATUS or status >= 500
    names = " ".join(c.__name__ for c in type(exc).__mro__)
    return any(w in names for w in ("Timeout", "Connect", "RemoteProtocol", "ReadError", "NetworkError"))


def describe(exc: BaseException) -> str:
    status = status_of(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return redact(f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {text[:300]}")


def call_with_retry(fn: Callable[[], T], backoff: Backoff,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[T, int]:
    """(result, attempts). Raises ProviderError when a non-retryable error occurs or tries run out."""
    last: BaseException | None = None
    for attempt in range(backoff.attempts):
        try:
            return fn(), attempt + 1
        except Exception as exc:  # noqa: BLE001 - classified below, never swallowed silently
            last = exc
            if not is_retryable(exc):
                raise ProviderError(describe(exc), attempt + 1, False) from None
            if attempt + 1 < backoff.attempts:
                sleep(backoff.delay(attempt))
    assert last is not None
    raise ProviderError(f"gave up after {backoff.attempts} attempts: {describe(last)}",
                        backoff.attempts, True) from None
