"""Taking entries out of the inbox for one node: what is taken, what is left, what is reported.

Contract:
- Only names ending in `.yaml`/`.yml` that do not start with a dot are taken, by renaming the entry
  itself (rename(2) never follows a link and never opens anything, so a FIFO, a link or a
  directory is taken like a file and judged afterwards, by admission).
- A name that cannot be taken for a reason of its own (permission, a name in the way, too long:
  `ENTRY_FAULTS`) is reported once (a warning naming it and the reason), skipped, and retried each
  pass without counting towards the pass's limit, so it never blocks the entries after it, and it
  does not count as pending (`--until-idle` can finish). Any other OSError (a full disk, a vanished
  mount) propagates: the daemon reports it and retries.
- Dot-files are never taken: a submitter writes `.NAME.tmp` and renames it into place, so a dot-file
  may be half-written. One older than `stray_dotfile_s` (its mtime at first sight, then this
  process's monotonic clock) is reported once; a name that is not an idea file is reported once.
- Names shown in reports pass through orze.safe_text.printable (no terminal escape codes).
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from orze.safe_text import printable

log = logging.getLogger(__name__)

IDEA_SUFFIXES = (".yaml", ".yml")
ENTRY_FAULTS = {errno.EACCES, errno.EPERM, errno.EBUSY, errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY,
                errno.EEXIST, errno.EINVAL, errno.ENAMETOOLONG, errno.ELOOP, errno.EXDEV}


def is_idea_name(name: str) -> bool:
    return not name.startswith(".") and name.endswith(IDEA_SUFFIXES)


class InboxScanner:
    def __init__(self, inbox: Path, mine: Path, stray_dotfile_s: float):
        self.inbox, self.mine, self.stray_dotfile_s = inbox, mine, stray_dotfile_s
        self.ignored: dict[str, str] = {}        # inbox names that could not be taken -> why
        self._noted: set[str] = set()            # names reported once (dot-files, other names)
        self._dot_due: dict[str, float] = {}     # dot-file -> monotonic time it becomes stray

    def names(self) -> list[str]:
        """The inbox's idea-file names, sorted; reports stray dot-files and other names once."""
        try:
            listing = os.listdir(self.inbox)
        except FileNotFoundError:
            return []
        present = set(listing)
        self._noted &= present
        self._dot_due = {n: t for n, t in self._dot_due.items() if n in present}
        for n in [n for n in self.ignored if n not in present]:
            del self.ignored[n]
        out = []
        for n in listing:
            if is_idea_name(n):
                out.append(n)
            elif n.startswith("."):
                self._check_dotfile(n)
            elif n not in self._noted:
                self._noted.add(n)
                log.warning("inbox: %s is not an idea file (only *.yaml and *.yml are admitted); left "
                            "where it is", printable(n, 200))
        return sorted(out)

    def _check_dotfile(self, name: str) -> None:
        if name in self._noted:
            return
        now = time.monotonic()
        due = self._dot_due.get(name)
        if due is None:
            try:
                age = time.time() - os.lstat(self.inbox / name).st_mtime
            except OSError:
                return
            due = self._dot_due[name] = now + max(0.0, self.stray_dotfile_s - age)
        if now >= due:
            self._noted.add(name)
            del self._dot_due[name]
            log.warning("inbox: %s is a dot-file older than %gs; dot-files are never admitted (a submitter's "
                        "temp file is .NAME.tmp until renamed into place); rename it without the dot to "
                        "submit it, or remove it", printable(name, 200), self.stray_dotfile_s)

    def pending(self) -> bool:
        return any(n not in self.ignored for n in self.names())

    def take(self, limit: int, busy: set[str]) -> list[Path]:
        """Rename up to `limit` idea files into this node's admitting area (plus every name
        reported as ignored, retried). `busy`: names already in the admitting area, left for a
        later pass so a leftover from a crash is never overwritten."""
        self.mine.mkdir(parents=True, exist_ok=True)
        names = self.names()
        fresh = [n for n in names if n not in self.ignored and n not in busy][:limit]
        retry = [n for n in names if n in self.ignored and n not in busy]
        taken = []
        for n in fresh + retry:
            try:
                os.rename(self.inbox / n, self.mine / n)
            except FileNotFoundError:
                continue  # another daemon won this entry
            except OSError as e:
                if e.errno not in ENTRY_FAULTS:
                    raise
                if n not in self.ignored:
                    log.warning("inbox: cannot take %s (%s); skipped, retried each pass", printable(n, 200),
                                os.strerror(e.errno))
                self.ignored[n] = os.strerror(e.errno)
                continue
            self.ignored.pop(n, None)
            taken.append(self.mine / n)
        return taken
