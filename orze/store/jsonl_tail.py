"""An incremental reader of a JSON-lines file that others append to: each call returns the
complete lines appended since the last call (a line still being written waits for its writer).
A file replaced or cut shorter (new inode, or smaller than what was read) is read again from its
start, and `restarted` says so. One open and one read per call, of the new bytes only.
`lines()` gives the raw lines (the leaderboard's Tail parses its own way); `new()` the JSON
objects, skipping and logging once per call the lines that are not."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class LineTail:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None
        self.restarted = False

    def lines(self) -> list[bytes]:
        self.restarted = False
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return []
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self.inode or st.st_size < self.offset:
                self.restarted = self.inode is not None
                self.inode, self.offset = st.st_ino, 0
            if st.st_size == self.offset:
                return []
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return data[:end].split(b"\n")[:-1] if end else []

    def new(self) -> list[dict[str, Any]]:
        out, bad = [], 0
        for raw in self.lines():
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                bad += 1
                continue
            if isinstance(obj, dict):
                out.append(obj)
            else:
                bad += 1
        if bad:
            log.warning("%s: skipped %d line(s) that are not JSON objects", self.path, bad)
        return out
