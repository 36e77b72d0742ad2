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

import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Literal

Method = Literal["excl", "link"]


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


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
    `durable=False` skips the fsync, for files that need not survive a power loss (a lock held for
    milliseconds): the shorter a lock is held, the less likely a killed holder leaves it behind."""
    if method == "excl":
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return True
    unique = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    with open(unique, "wb") as f:
        f.write(data)
        f.flush()
        if durable:
            os.fsync(f.fileno())
    try:
        try:
            os.link(unique, path)
        except FileExistsError:
            return False
        except OSError:
            pass  # NFS may report failure although the link was made: the link count decides
        return os.stat(unique).st_nlink == 2
    finally:
        os.unlink(unique)


def append_line(path: Path, data: bytes, durable: bool = True) -> None:
    """Append one complete record (ending in a newline) in one write, fsynced unless `durable` is
    False. OSError on a short write, naming the file: the record is then not on disk as a whole."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):
            raise OSError(f"{path}: short write ({written} of {len(data)} bytes)")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(o: Any) -> Any:
    # numpy scalars and paths appear in metrics; write them as plain JSON values
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
