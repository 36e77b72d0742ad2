"""Admission: rejects with reasons (kept), refuses duplicates naming the run, survives bad files,
is idempotent after a crash, flags or refuses near-duplicates."""

import json

import pytest

from orze.config import AdmissionConfig
from orze.daemon.admission import AdmissionReport, Admitter
from orze.layout import Layout
from orze.store import queue
from orze.store.inbox import submit_ideas, submit_text


@pytest.fixture
def setup(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    return layout, Admitter(layout, default_space, AdmissionConfig(near_duplicates="off"), "n1")


def rejected_records(layout):
    return [json.loads(p.read_text()) for p in sorted(layout.rejected.glob("*.json"))]


def test_admits_valid_and_keeps_rejected_with_reason(setup):
    layout, adm = setup
    submit_ideas(layout, [{"backbone": "vjepa2"}, {"backbone": "vjepa9", "idea_name": "bad one"}])
    r = adm.admit_pending()
    assert len(r.admitted) == 1 and r.rejected == 1
    assert queue.depth(layout) == 1
    rec = rejected_records(layout)[0]
    assert rec["idea"] == {"backbone": "vjepa9", "idea_name": "bad one"}
    assert "backbone: 'vjepa9' is not allowed" in rec["errors"][0]
    assert not list(layout.inbox.iterdir()) and len(list(layout.admitted.iterdir())) == 1


def test_duplicate_refused_naming_the_run(setup):
    layout, adm = setup
    submit_ideas(layout, [{"learning_rate": 0.0003}])
    first = adm.admit_pending().admitted[0]
    submit_ideas(layout, [{"learning_rate": "3e-4", "idea_name": "same thing, other name"}])
    r = adm.admit_pending()
    assert r.admitted == [] and r.duplicates == 1
    assert f"duplicate of run {first}" in r.messages[0]
    assert rejected_records(layout)[0]["duplicate_of"] == first


@pytest.mark.parametrize("text, needle", [
    ("backbone: [vjepa2\n", "not valid YAML"),
    ("", "empty file"),
    ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
])
def test_bad_files_rejected_and_kept(setup, text, needle):
    layout, adm = setup
    submit_text(layout, text)
    r = adm.admit_pending()
    assert r.rejected == 1 and needle in r.messages[0]
    assert rejected_records(layout)[0]["idea"]["text"].strip() == text.strip()


def test_size_and_count_limits(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    adm = Admitter(layout, default_space, AdmissionConfig(max_file_bytes=200, max_ideas_per_file=3), "n1")
    submit_ideas(layout, [{"seed": i} for i in range(4)])
    submit_text(layout, "rationale: " + "x" * 300)
    r = adm.admit_pending()
    assert r.rejected == 2 and r.admitted == []
    assert any("at most 3 per file" in m for m in r.messages)
    assert any("at most 200 per file" in m for m in r.messages)


def test_reprocessing_after_crash_is_idempotent(setup):
    layout, adm = setup
    submit_ideas(layout, [{"seed": 1}, {"seed": 2}])
    taken = adm.take_files()[0]
    # Crash after the first idea was admitted: admit it alone, then the whole file again.
    partial = AdmissionReport()
    first = adm.admit_idea({"seed": 1}, taken.name, 0, partial)
    r = AdmissionReport()
    adm.admit_file(taken, r)
    assert r.duplicates == 0 and r.rejected == 0 and len(r.admitted) == 1
    assert queue.depth(layout) == 2 and first is not None


def test_exactly_one_admitter_takes_a_file(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    a = Admitter(layout, default_space, AdmissionConfig(), "a")
    b = Admitter(layout, default_space, AdmissionConfig(), "b")
    for i in range(20):
        submit_ideas(layout, [{"seed": i}])
    got_a = a.take_files(limit=10)
    got_b = b.take_files()
    assert len(got_a) + len(got_b) == 20
    assert not {p.name for p in got_a} & {p.name for p in got_b}


@pytest.mark.parametrize("mode", ["flag", "refuse"])
def test_near_duplicates(tmp_path, default_space, mode):
    layout = Layout.at(tmp_path).ensure()
    adm = Admitter(layout, default_space, AdmissionConfig(near_duplicates=mode, near_tolerance=0.05), "n")
    submit_ideas(layout, [{"learning_rate": 3.0e-4}])
    first = adm.admit_pending().admitted[0]
    submit_ideas(layout, [{"learning_rate": 3.1e-4}, {"learning_rate": 3e-3}, {"pooling": "mean", "learning_rate": 3.1e-4}])
    r = adm.admit_pending()
    if mode == "flag":
        assert len(r.admitted) == 3 and r.near_duplicates == 1
        flagged = [queue.read(layout, n) for n in queue.list_names(layout)]
        assert sum(e.near_duplicate_of == first for e in flagged) == 1
    else:
        assert len(r.admitted) == 2 and r.near_duplicates == 1
        assert f"near-duplicate of run {first}" in r.messages[0]
