"""The code base passes ruff (pyflakes rules and import sorting, configured in pyproject.toml), so
unused imports, undefined names and unsorted imports fail the README's test command and CI."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_check_passes():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert "No module named ruff" not in proc.stderr, "ruff is part of the dev extra: pip install -e '.[dev]'"
    assert proc.returncode == 0, proc.stdout + proc.stderr
