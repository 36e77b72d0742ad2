"""safe_read: only regular files are opened and read, never through a link, size checked on the
descriptor and the read bounded; refusals say what the entry is."""

import os

import pytest

from orze.store.safe_read import Unsafe, inspect, read_regular
from orze.vocab import EntryKind


def test_regular_file_read_with_identity(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_bytes(b"seed: 1\n")
    data, info = read_regular(p, 100)
    assert data == b"seed: 1\n" and info.kind == EntryKind.FILE and info.size == 8
    os.rename(p, tmp_path / "b.yaml")   # a rename keeps the identity (records are named by it)
    assert read_regular(tmp_path / "b.yaml", 100)[1].identity == info.identity


@pytest.mark.parametrize("make, kind", [
    (lambda p, t: os.mkfifo(p), EntryKind.FIFO),
    (lambda p, t: os.symlink("/dev/zero", p), EntryKind.SYMLINK),
    (lambda p, t: os.symlink(t, p), EntryKind.SYMLINK),
    (lambda p, t: p.mkdir(), EntryKind.DIRECTORY),
])
def test_non_regular_entries_refused_without_reading(tmp_path, make, kind):
    target = tmp_path / "target.txt"
    target.write_text("secret\n")
    p = tmp_path / "x.yaml"
    make(p, target)
    with pytest.raises(Unsafe) as e:
        read_regular(p, 100, head_bytes=50)
    assert e.value.info.kind == kind and e.value.head == b"" and "not a regular file" in e.value.reason
    assert inspect(p).kind == kind


def test_hard_link_refused(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("secret\n")
    os.link(target, tmp_path / "x.yaml")
    with pytest.raises(Unsafe, match="hard link") as e:
        read_regular(tmp_path / "x.yaml", 100, head_bytes=50)
    assert e.value.head == b""


def test_too_large_refused_with_only_the_head(tmp_path):
    p = tmp_path / "big.yaml"
    with open(p, "wb") as f:
        f.write(b"0123456789")
        f.truncate(1 << 32)
    with pytest.raises(Unsafe, match="4294967296 bytes; at most 1000 per file") as e:
        read_regular(p, 1000, head_bytes=4)
    assert e.value.head == b"0123"
    exact = tmp_path / "exact.yaml"
    exact.write_bytes(b"x" * 1000)
    assert read_regular(exact, 1000)[0] == b"x" * 1000   # the limit itself is allowed
