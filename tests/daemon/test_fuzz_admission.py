"""Fuzzing the admission path with malformed and hostile idea files: no Admitter ever raises, and
every file ends up admitted or rejected with a reason (nothing silently dropped)."""

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orze.config import AdmissionConfig
from orze.daemon.admission import AdmissionReport, Admitter
from orze.layout import Layout
from orze.store import queue
from orze.store.inbox import submit_text

HOSTILE = [
    "!!python/object/apply:os.system ['touch /tmp/pwned']",
    "a: &a [1,2]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    "learning_rate: 1e999999", "batch_size: 99999999999999999999999999", "- " * 2000 + "x",
    "[" * 500, "\x00\x01\x02\xff", "epochs: 40: 3", "? [a, b]\n: c", "backbone: !!binary aGVsbG8=",
    "- {backbone: ../../etc/passwd}", "seed: .nan", "- idea_name: x\n  idea_name: y",
    "a: &a [*a, 1]", "seed: " + "9" * 5000, "- {seed: 1, seed: 2}\n- seed: 3", "- seed: -.inf\n- seed: 4",
    "<<: {seed: 1}\nseed: 2", "\x1b[31m: 1", "[" * 20000, "- &x {seed: 5}\n- *x\n- *x",
]
keys = st.sampled_from(["backbone", "pooling", "learning_rate", "batch_size", "epochs", "loss",
                        "focal_gamma", "seed", "priority", "bogus", "../x", "", "epochs: 40"])
values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                      max_leaves=10)
ideas = st.dictionaries(keys, values, max_size=6)
documents = st.one_of(
    st.lists(ideas, max_size=5).map(lambda x: yaml.safe_dump(x)),
    ideas.map(lambda x: yaml.safe_dump(x)),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(HOSTILE),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents)
def test_admission_never_raises_and_accounts_for_everything(tmp_path_factory, default_space, doc):
    layout = Layout.at(tmp_path_factory.mktemp("fuzz")).ensure()
    admitter = Admitter(layout, default_space, AdmissionConfig(max_file_bytes=20_000), "fuzz")
    submit_text(layout, doc)
    report = admitter.admit_pending()
    assert isinstance(report, AdmissionReport) and report.files == 1
    assert not list(layout.inbox.iterdir()) and not list(layout.admitting_for("fuzz").iterdir())
    rejected = [json.loads(p.read_text()) for p in layout.rejected.glob("*.json")]
    assert all(r["errors"] for r in rejected)
    assert queue.depth(layout) == len(report.admitted)
    assert len(report.admitted) + len(rejected) >= 1  # the file produced an outcome
