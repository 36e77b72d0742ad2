"""Reading a file that another party put in a shared directory, without trusting what it is.

Contract of `read_regular(path, max_bytes, head_bytes)`:
- It opens only a regular file, and never through a link: the entry is judged by lstat (a FIFO,
  socket or device is never opened, so it cannot hang or feed the reader), then opened with
  O_NOFOLLOW | O_NONBLOCK | O_NOCTTY and judged again on the open descriptor (fstat: still a
  regular file, the same inode), so an entry swapped for a link or a FIFO in between is refused.
- A file with more than one hard link is refused: its content may be another file's.
- The size is checked on the descriptor before reading, and the read itself is bounded (a file
  that grows while being read is refused at `max_bytes + 1`), so a huge or sparse file costs at
  most `max(max_bytes, head_bytes)` bytes of memory.
- Refusals raise `Unsafe` (the entry's fault: record it and move on), with the entry's identity
  and, for a regular file that is too large, its first `head_bytes`. An OSError is the
  filesystem's fault (EIO, a vanished mount): the caller retries later.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from orze.vocab import EntryKind

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class EntryInfo:
    """An entry's identity by lstat: what it is, and what stays the same across renames (a file
    re-read after a crash has the same dev, ino and mtime_ns)."""
    kind: EntryKind
    size: int
    dev: int
    ino: int
    mtime_ns: int
    nlink: int

    @property
    def identity(self) -> str:
        return f"{self.kind}:{self.dev}:{self.ino}:{self.mtime_ns}:{self.size}"


def kind_of(mode: int) -> EntryKind:
    if stat.S_ISREG(mode):
        return EntryKind.FILE
    if stat.S_ISLNK(mode):
        return EntryKind.SYMLINK
    if stat.S_ISDIR(mode):
        return EntryKind.DIRECTORY
    if stat.S_ISFIFO(mode):
        return EntryKind.FIFO
    if stat.S_ISSOCK(mode):
        return EntryKind.SOCKET
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return EntryKind.DEVICE
    return EntryKind.OTHER


def inspect(path: Path) -> EntryInfo:
    """The entry itself (lstat; a link is a link). FileNotFoundError if it vanished."""
    st = os.lstat(path)
    return _info(st)


def _info(st: os.stat_result) -> EntryInfo:
    return EntryInfo(kind=kind_of(st.st_mode), size=st.st_size, dev=st.st_dev, ino=st.st_ino,
                     mtime_ns=st.st_mtime_ns, nlink=st.st_nlink)


class Unsafe(Exception):
    """The entry is not something to read: `reason` says why, `info` what it is, `head` its first
    bytes where it is a regular file that was only too large."""

    def __init__(self, reason: str, info: EntryInfo, head: bytes = b""):
        super().__init__(reason)
        self.reason, self.info, self.head = reason, info, head


def read_regular(path: Path, max_bytes: int, head_bytes: int = 0) -> tuple[bytes, EntryInfo]:
    """The content of the regular file at `path` (at most `max_bytes`) and its identity; see the
    module docstring for what is refused and why."""
    info = inspect(path)
    if info.kind != EntryKind.FILE:
        raise Unsafe(f"a {info.kind}, not a regular file; only regular files are read", info)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR, errno.EACCES, errno.EPERM):
            raise Unsafe(f"cannot be opened as a regular file ({errno.errorcode.get(e.errno, e.errno)})",
                         info) from None
        raise
    try:
        now = _info(os.fstat(fd))
        if now.kind != EntryKind.FILE or (now.dev, now.ino) != (info.dev, info.ino):
            raise Unsafe(f"changed into a {now.kind} while being opened; only regular files are read", now)
        if now.nlink > 1:
            raise Unsafe(f"a hard link ({now.nlink} names for one file); only a file of its own is read", now)
        if now.size > max_bytes:
            raise Unsafe(f"{now.size} bytes; at most {max_bytes} per file", now, _read_upto(fd, head_bytes))
        data = _read_upto(fd, max_bytes + 1)
        if len(data) > max_bytes:
            raise Unsafe(f"grew past {max_bytes} bytes while being read; at most {max_bytes} per file",
                         now, data[:head_bytes])
        return data, now
    finally:
        os.close(fd)


def _read_upto(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
