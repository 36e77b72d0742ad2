"""The filesystem idioms every component uses, one helper each:

- `atomic_write_*`: temp file in the same directory, fsync, rename, fsync the directory. rename(2)
  within a directory is atomic on local filesystems, NFS and Lustre, so a reader sees either the old
  file or the complete new one, never a torn write, even if the writer is killed mid-way.
- `create_exclusive`: create a file iff it does not exist, by O_CREAT|O_EXCL or, with method
  "link", by link(2) of a unique file trusted only if its link count is 2 (the portable recipe where
  O_EXCL is doubtful, e.g. old NFS clients). The basis of every lease (orze.store.lease).
- `append_line`: one record appended to a shared log in a single write(2), a short write refused
  (a full disk never leaves half a record without an error), fsynced. Callers hold the file's lock.
- `read_json_or_none` / `read_json_files`: a JSON file's content (every file's, in a directory) if it
  exists and parses as the expected type.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

Method = Literal["excl", "link"]

# Modes asked for at creation; the process umask (orze.store.permissions sets it, whatever the
# user's) takes the group and world bits away as the research directory's policy says.
FILE_MODE = 0o666


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None, durable: bool = True) -> None:
    """`mode`: the file's permission bits, exactly (e.g. 0o600 for a private record), instead of
    FILE_MODE under the process umask. `durable=False` skips the fsyncs, for advisory files that
    are rewritten often (readers still see the old content or the new, never a torn one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, FILE_MODE), "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, mode: int | None = None, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode, durable)


def atomic_write_json(path: Path, obj: Any, mode: int | None = None, durable: bool = True) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n", mode,
                      durable)


def read_json_or_none(path: Path, expect: type | None = dict) -> Any:
    """The parsed content of a JSON file; None if it is missing, unreadable, not JSON, or not of
    type `expect` (a dict by default; None accepts any JSON value)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    if expect is not None and not isinstance(data, expect):
        return None
    return data


def read_json_files(directory: Path, pattern: str = "*.json") -> list[tuple[Path, dict[str, Any]]]:
    """Every readable JSON object in `directory` matching `pattern`, by name (heartbeats, status
    files); a missing directory, an unreadable or torn file is left out."""
    try:
        paths = sorted(Path(directory).glob(pattern))
    except OSError:
        return []
    return [(p, obj) for p in paths if (obj := read_json_or_none(p)) is not None]


def create_exclusive(path: Path, data: bytes, method: Method = "excl", durable: bool = True) -> bool:
    """Create `path` holding `data` iff it does not exist; True if this caller created it.

    The content is written to a private temp file first and published by link(2), which is
    exclusive and atomic (EEXIST if the name exists), so another process sees the file either
    absent or complete: a kill or a full disk while writing leaves no empty or partial file under
    `path` (only a temp file, which is removed). With method "link" an error from link(2) is not
    trusted (NFS may report failure although the link was made): the temp file's link count
    decides. With "excl", a filesystem without hard links falls back to O_CREAT|O_EXCL, whose
    readers must then tolerate an empty file (they judge it by its age: orze.store.lease).
    `durable=False` skips the fsync, for files that need not survive a power loss (a lock held
    for milliseconds): the shorter a lock is held, the less likely a killed holder leaves it."""
    path = Path(path)
    unique = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(unique, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        try:
            _write_all(fd, data, unique)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(unique, path)
        except FileExistsError:
            return False
        except OSError as e:
            if method == "excl" and e.errno in _NO_LINKS:
                return _create_excl(path, data, durable)
            if method == "excl":
                raise
            # NFS may report failure although the link was made: the link count decides
        return method == "excl" or os.stat(unique).st_nlink == 2
    finally:
        try:
            os.unlink(unique)
        except FileNotFoundError:
            pass


_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS}


def _create_excl(path: Path, data: bytes, durable: bool) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return False
    try:
        _write_all(fd, data, path)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _write_all(fd: int, data: bytes, path: Path) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, f"{path}: write made no progress")
        view = view[n:]


def append_line(path: Path, data: bytes, durable: bool = True) -> None:
    """Append one complete record (ending in a newline) in one write, fsynced unless `durable` is
    False. Callers hold the file's lock (they are its only writer meanwhile), which makes two
    repairs safe: a file whose last line is unterminated (a writer killed or stalled mid-record,
    or a full disk) gets a newline first, so the record never glues onto the fragment; and a
    failed or short write is cut off again (ftruncate to the size before it), so a full disk
    leaves no half record. OSError names the file."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"{path}: short write ({written} of {len(data)} bytes)")
            if durable:
                os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass  # readers skip a torn line; the next append starts on a fresh line
            raise
    finally:
        os.close(fd)


def _json_default(o: Any) -> Any:
    # numpy scalars and paths appear in metrics; write them as plain JSON values
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
