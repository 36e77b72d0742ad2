"""A real daemon (`orze run --until-idle`) pointed at a few hundred hostile inbox entries (FIFOs,
links to /dev/zero, /proc/self/environ and /etc/passwd, alias bombs, sparse huge files, huge
ints, escape codes in names, ...) with a fake API key in its environment: it neither hangs nor
crashes, admits and runs every valid idea, copies no secret or foreign file into runs/, and
shows no escape code. This runs scripts/hostile_inbox.py at CI size."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "hostile_inbox.py"


def test_daemon_survives_a_hostile_inbox(tmp_path):
    spec = importlib.util.spec_from_file_location("orze_hostile_inbox", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    counts = mod.run(tmp_path / "r", entries=126, timeout_s=120)
    assert not counts["hang"] and not counts["crash"], counts
    assert counts["valid_expected"] >= 40 and counts["valid_done"] == counts["valid_expected"], counts
    assert counts["hidden_admitted"] == 0, counts
    assert counts["secrets_found"] == 0 and counts["foreign_found"] == 0, counts
    assert counts["escape_in_output"] == 0 and counts["daemon_errors"] == 0, counts
    assert counts["quarantined"] >= 48 and counts["idea_files_left_in_inbox"] == 0, counts
    assert counts["largest_record_bytes"] < 16_384, counts
    assert counts["ok"], counts
