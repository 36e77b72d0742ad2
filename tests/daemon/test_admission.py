"""Admission: rejects with reasons (kept), refuses duplicates naming the run, survives bad files,
is idempotent after a crash, flags or refuses near-duplicates."""

import json

import numpy as np
import pytest

from orze.config import AdmissionConfig
from orze.daemon.admission import AdmissionReport, Admitter
from orze.features.store import write_store
from orze.layout import Layout
from orze.store import queue
from orze.store.inbox import submit_ideas, submit_text


def add_stores(layout, backbones):
    """A (one-clip) feature store per backbone: admission admits only ideas whose stores exist."""
    for b in backbones:
        write_store(layout.backbone_dir(b), b, ["c0"], np.zeros((1, 1, 2), dtype=np.float32), {})


def research(path, space):
    layout = Layout.at(path).ensure()
    add_stores(layout, space.dimensions["backbone"].choices)
    return layout


@pytest.fixture
def setup(tmp_path, default_space):
    layout = research(tmp_path, default_space)
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
    layout = research(tmp_path, default_space)
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
    layout = research(tmp_path, default_space)
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
    layout = research(tmp_path, default_space)
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


# --- the feature-store check (issue 19) ----------------------------------------------------------

def test_missing_store_reason_is_pure_and_names_backbone_and_stores():
    from orze.daemon.stores import missing_store_reason
    assert missing_store_reason({"backbone": "vjepa2"}, {"vjepa2", "dinov2_b"}) is None
    assert missing_store_reason({"backbone": ["vjepa2", "dinov2_b"]}, {"vjepa2", "dinov2_b"}) is None
    why = missing_store_reason({"backbone": ["vjepa2", "siglip2"]}, {"vjepa2", "dinov2_b"})
    assert why.startswith("backbone:") and "siglip2" in why and "stores that exist: dinov2_b, vjepa2" in why
    assert "vjepa2 (" not in why.split(";")[0]   # the present one is not named missing
    assert "stores that exist: none" in missing_store_reason({"backbone": "vjepa2"}, set())


def test_admission_rejects_an_idea_whose_backbone_has_no_store(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    add_stores(layout, ["vjepa2", "dinov2_b"])
    adm = Admitter(layout, default_space, AdmissionConfig(near_duplicates="off"), "n1")
    submit_ideas(layout, [{"backbone": "vjepa2"}, {"backbone": "siglip2"},
                          {"backbone": ["dinov2_b", "convnext"]}, {"backbone": ["dinov2_b", "vjepa2"]}])
    r = adm.admit_pending()
    assert len(r.admitted) == 2 and r.rejected == 2
    errors = [rec["errors"][0] for rec in rejected_records(layout)]
    assert sorted(e.split(";")[0] for e in errors) == [
        "backbone: no feature store for convnext (features/<backbone>/meta.json)",
        "backbone: no feature store for siglip2 (features/<backbone>/meta.json)"]
    assert all("stores that exist: dinov2_b, vjepa2" in e for e in errors)
    # an incomplete store (no meta.json: still being written) does not count
    layout.backbone_dir("siglip2").mkdir(parents=True)
    submit_ideas(layout, [{"backbone": "siglip2", "seed": 3}])
    assert adm.admit_pending().rejected == 1


def test_require_feature_store_off_admits_without_stores(tmp_path, default_space):
    layout = Layout.at(tmp_path).ensure()
    adm = Admitter(layout, default_space, AdmissionConfig(require_feature_store=False), "n1")
    submit_ideas(layout, [{"backbone": "siglip2"}])
    assert len(adm.admit_pending().admitted) == 1
