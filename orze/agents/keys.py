"""API keys: read from the environment only, and kept out of every log, transcript and error.

`require_key` names the variable(s) a provider needs when none is set. `redact` replaces every
known key value (and anything shaped like a key header) in a text before it is written anywhere.
"""

from __future__ import annotations

import os
import re

PROVIDER_KEYS = {
    "claude": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai": ("OPENAI_API_KEY",),
}
_ALL = [v for names in PROVIDER_KEYS.values() for v in names]
_HEADER = re.compile(r"(?i)(x-api-key|x-goog-api-key|authorization|api[_-]?key)([\"']?\s*[:=]\s*[\"']?)"
                     r"(bearer\s+)?[A-Za-z0-9_\-\.]{8,}")


class MissingKeyError(RuntimeError):
    """No API key in the environment; the message names the variable(s) to set."""


def track(var: str) -> None:
    """Also redact the value of `var` (a key variable an agent's options name)."""
    if var not in _ALL:
        _ALL.append(var)


def require_key(policy: str, names: tuple[str, ...] | None = None) -> str:
    names = names or PROVIDER_KEYS[policy]
    for name in names:
        track(name)
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    wanted = " or ".join(names)
    raise MissingKeyError(f"the {policy} policy needs an API key: set {wanted} in the environment "
                          "(keys are read only from the environment, never from files)")


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """`text` with every API key found in the environment (and key-like header values) masked."""
    if not text:
        return text
    for name in _ALL:
        value = os.environ.get(name, "").strip()
        if len(value) >= 4:
            text = text.replace(value, f"<{name}>")
    for value in extra:
        if value and len(value) >= 4:
            text = text.replace(value, "<redacted>")
    return _HEADER.sub(lambda m: m.group(1) + m.group(2) + "<redacted>", text)
