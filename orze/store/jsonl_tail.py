"""An incremental reader of a JSON-lines file that others append to: each call returns the
objects of the complete lines appended since the last call (a line still being written waits
for its writer). A file replaced or cut shorter (new inode, or smaller than what was read) is
read again from its start, and `restarted` says so. Lines that are not JSON objects are skipped
and logged once per call. One open and one read per call, of the new bytes only."""

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

    def new(self) -> list[dict[str, Any]]:
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
        out, bad = [], 0
        for raw in data[:end].split(b"\n"):
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
