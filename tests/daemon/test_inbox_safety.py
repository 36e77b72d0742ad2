"""A hostile inbox cannot hang, crash, bloat or leak through admission (issue 14, items 6 to 9):
non-regular entries are quarantined without being opened and never block the files after them;
bounded YAML; per-idea verdicts for duplicate keys and oversized or non-finite numbers; rejection
records capped and written once; dot-files and stuck entries reported once."""

import json
import logging
import os
import threading

import pytest

from orze.config import AdmissionConfig
from orze.daemon.admission import AdmissionReport, Admitter
from orze.layout import Layout
from orze.store import queue
from orze.store.events import read_events
from orze.store.inbox import submit_text

BOMB = ("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))


@pytest.fixture
def layout(tmp_path):
    return Layout.at(tmp_path / "r").ensure()


def admitter(layout, space, **cfg):
    # These tests are about reading the inbox; whether a backbone has a store is tested in
    # test_admission.py, so the store check is off here.
    cfg.setdefault("require_feature_store", False)
    return Admitter(layout, space, AdmissionConfig(near_duplicates="off", **cfg), "n1")


def records(layout):
    return [json.loads(p.read_text()) for p in sorted(layout.rejected.glob("*.json"))]


def admit_with_deadline(adm, seconds=20.0):
    """admit_pending in a thread: a hang fails the test instead of hanging it."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", adm.admit_pending()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "admission hung"
    return out["r"]


def test_non_regular_entries_are_quarantined_unopened_and_block_nothing(layout, default_space, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("ANTHROPIC_API_KEY=sk-ant-NOT-TO-BE-COPIED\n")
    inbox = layout.inbox
    os.mkfifo(inbox / "a-fifo.yaml")
    os.symlink(secret, inbox / "b-link.yaml")
    os.symlink("/dev/zero", inbox / "c-zero.yaml")
    os.symlink(inbox / "missing.yaml", inbox / "d-dangling.yaml")
    (inbox / "e-dir.yaml").mkdir()
    os.link(secret, inbox / "f-hardlink.yaml")
    (inbox / "z-valid.yaml").write_text("seed: 7\n")
    r = admit_with_deadline(admitter(layout, default_space))
    assert len(r.admitted) == 1 and r.rejected == 6
    assert queue.depth(layout) == 1
    recs = records(layout)
    assert all("sk-ant-NOT-TO-BE-COPIED" not in json.dumps(x) for x in recs)
    kinds = sorted(x["idea"]["kind"] for x in recs)
    assert kinds == ["directory", "fifo", "hardlink", "symlink", "symlink", "symlink"]
    quarantined = sorted(os.listdir(layout.quarantine))
    assert len(quarantined) == 6
    assert sum(os.path.islink(layout.quarantine / q) for q in quarantined) == 3   # the links themselves
    assert secret.read_text().startswith("ANTHROPIC_API_KEY")   # the target untouched
    hard = next(x for x in recs if "hard link" in x["errors"][0])
    assert "text" not in hard["idea"]   # nothing of another file's content is kept
    assert os.listdir(layout.admitted) == ["z-valid.yaml"]
    assert not [n for n in os.listdir(inbox) if not n.startswith(".")]
    assert not os.listdir(layout.admitting_for("n1"))


def test_huge_sparse_file_is_refused_before_reading_with_only_its_first_bytes_kept(layout, default_space):
    with open(layout.inbox / "huge.yaml", "wb") as f:
        f.write(b"seed: 1\nrationale: ")
        f.truncate(1 << 33)   # 8 GiB, sparse: reading it would exhaust memory
    r = admit_with_deadline(admitter(layout, default_space, record_excerpt_bytes=64))
    assert r.rejected == 1 and "8589934592 bytes; at most 1000000" in r.messages[0]
    rec = records(layout)[0]
    assert rec["idea"]["bytes"] == 1 << 33 and rec["idea"]["truncated"] is True
    assert rec["idea"]["text"].startswith("seed: 1\nrationale: ") and len(rec["idea"]["text"]) == 64


def test_alias_bomb_refused_cheaply_by_expanded_node_count(layout, default_space):
    submit_text(layout, BOMB)
    r = admitter(layout, default_space).admit_pending()
    assert r.rejected == 1 and "more than 20000 YAML nodes once aliases are expanded" in r.messages[0]
    assert len(next(layout.rejected.glob("*.json")).read_bytes()) < 4096


def test_max_yaml_nodes_is_wired(layout, default_space):
    text = "seed: 3\nrationale: [" + ", ".join(["x"] * 30) + "]\n"   # ~35 nodes, a list where text belongs
    submit_text(layout, text)
    r = admitter(layout, default_space, max_yaml_nodes=40).admit_pending()
    assert r.rejected == 1 and "rationale: expected text" in r.messages[0]   # parsed, judged per idea
    submit_text(layout, text)
    r = admitter(layout, default_space, max_yaml_nodes=20).admit_pending()
    assert r.rejected == 1 and "more than 20 YAML nodes" in r.messages[0]


def test_max_yaml_depth_and_recursive_aliases(layout, default_space):
    submit_text(layout, "seed: 4\nidea_name: {a: {b: {c: 1}}}\n")
    r = admitter(layout, default_space, max_yaml_depth=3).admit_pending()
    assert "nested deeper than 3 levels" in r.messages[0]
    submit_text(layout, "seed: 4\nidea_name: {a: {b: {c: 1}}}\n")
    r = admitter(layout, default_space, max_yaml_depth=8).admit_pending()
    assert "idea_name: expected text" in r.messages[0]
    submit_text(layout, "a: &a [*a, 1]\n")
    r = admitter(layout, default_space).admit_pending()
    assert "refers to itself" in r.messages[0]
    submit_text(layout, "[" * 100_000)
    r = admitter(layout, default_space).admit_pending()
    assert "nested deeper than 32 levels" in r.messages[0]


@pytest.mark.parametrize("bad, needle", [
    (f"seed: {10 ** 400}", "seed (line 2): an integer of 401 digits is too large"),
    (f"seed: {'9' * 5000}", "an integer of 5000 digits is too large"),
    ("seed: .nan", "seed (line 2): .nan is not a finite number"),
    ("learning_rate: -.inf", "learning_rate (line 2): -.inf is not a finite number"),
    ("rationale: {why: [1, .inf]}", "rationale.why[1] (line 2): .inf is not a finite number"),
    ("seed: 5\n  seed: 6", "seed: given twice (lines 2 and 3)"),
    ("learning_rate: 1e999", "'1e999' is not a number"),
])
def test_bad_numbers_and_duplicate_keys_reject_only_their_idea(layout, default_space, bad, needle):
    submit_text(layout, f"- seed: 1\n- {bad}\n- seed: 3\n")
    r = admitter(layout, default_space).admit_pending()
    assert len(r.admitted) == 2 and r.rejected == 1, r.messages
    assert needle in r.messages[0], r.messages
    assert records(layout)[0]["index"] == 1


def test_record_excerpt_bytes_is_wired(layout, default_space):
    idea = "- {seed: 1, bogus: " + "y" * 600 + "}\n"
    submit_text(layout, idea)
    admitter(layout, default_space, record_excerpt_bytes=100).admit_pending()
    small = records(layout)[0]["idea"]
    assert small["truncated"] is True and small["bytes"] > 600 and len(small["text"]) == 100
    for p in layout.rejected.glob("*.json"):
        p.unlink()
    submit_text(layout, idea)
    admitter(layout, default_space, record_excerpt_bytes=5000).admit_pending()
    assert records(layout)[0]["idea"] == {"seed": 1, "bogus": "y" * 600}


def test_reprocessing_after_a_crash_writes_each_rejection_once(layout, default_space):
    submit_text(layout, "- seed: 1\n- seed: .nan\n- backbone: nope\n")
    adm = admitter(layout, default_space)
    path = adm.take_files()[0]
    adm.admit_file(path, AdmissionReport())
    # A crash before the file reached runs/admitted/: the same file (same inode) is admitted again.
    os.rename(layout.admitted / path.name, path)
    r = AdmissionReport()
    adm.admit_file(path, r)
    assert len(records(layout)) == 2 and r.rejected == 2 and r.duplicates == 0
    rejected_events = [e for e in read_events(layout) if e.get("event") == "rejected"]
    assert len(rejected_events) == 2
    assert queue.depth(layout) == 1


def test_dotfiles_never_taken_and_strays_reported_once(layout, default_space, caplog):
    old = layout.inbox / ".old.yaml.tmp"
    old.write_text("seed: 9\n")
    os.utime(old, (os.path.getmtime(old) - 100, os.path.getmtime(old) - 100))
    (layout.inbox / ".fresh.yaml.tmp").write_text("seed: 10\n")
    (layout.inbox / "notes.txt").write_text("seed: 11\n")
    adm = admitter(layout, default_space, stray_dotfile_s=1000)
    with caplog.at_level(logging.WARNING, logger="orze"):
        assert adm.admit_pending().files == 0 and not adm.pending()
    assert not any("dot-file" in m for m in caplog.messages)
    assert sum("notes.txt is not an idea file" in m for m in caplog.messages) == 1
    caplog.clear()
    adm = admitter(layout, default_space, stray_dotfile_s=50)
    with caplog.at_level(logging.WARNING, logger="orze"):
        adm.admit_pending()
        adm.admit_pending()
    dot_notes = [m for m in caplog.messages if "dot-file" in m]
    assert len(dot_notes) == 1 and ".old.yaml.tmp" in dot_notes[0]
    assert queue.depth(layout) == 0 and old.exists()


def test_an_entry_that_cannot_be_taken_is_reported_once_and_blocks_nothing(layout, default_space, monkeypatch,
                                                                           caplog):
    import orze.daemon.inbox_scan as scan

    for name in ("a-stuck.yaml", "b.yaml"):
        (layout.inbox / name).write_text(f"seed: {len(name)}\n")
    real = os.rename

    def rename(src, dst, *a, **k):   # the filesystem refuses this one entry (e.g. a sticky inbox)
        if os.path.basename(src) == "a-stuck.yaml":
            raise PermissionError(1, "Operation not permitted")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(scan.os, "rename", rename)
    adm = admitter(layout, default_space)
    with caplog.at_level(logging.WARNING, logger="orze"):
        assert len(adm.admit_pending().admitted) == 1
        adm.admit_pending()
    assert sum("cannot take a-stuck.yaml" in m for m in caplog.messages) == 1
    assert not adm.pending()   # --until-idle can finish
    monkeypatch.setattr(scan.os, "rename", real)
    assert len(adm.admit_pending().admitted) == 1   # retried, taken once possible
