"""Text from outside (inbox file names, idea keys and values) made safe to show on a terminal,
in a log or in `orze status`: the one helper every such place uses.

`printable(text)` replaces control characters (C0, DEL, C1: the ESC of terminal escape codes, CR
that rewrites a line, BEL) and invisible format characters (bidirectional overrides, zero-width
characters) with a visible escape such as `\\x1b` or `\\u202e`; everything else is kept. With
`limit` the result is cut to that many characters (marked with …).
"""

from __future__ import annotations

import unicodedata

_UNSAFE_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: object, limit: int | None = None) -> str:
    s = text if isinstance(text, str) else str(text)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "…"
    if s.isprintable():
        return s
    return "".join(_escape(ch) if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in s)
