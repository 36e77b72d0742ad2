"""Hostile inbox: a generator of entries an agent (or an attacker sharing the directory) could
leave in runs/inbox/, and a runner that points a real daemon (`orze run --until-idle`) at them.

    python scripts/hostile_inbox.py [--entries 10000] [--timeout 900] [--seed 0] [--keep DIR]

Entries, in rotation: FIFOs named *.yaml; symlinks to /dev/zero, /proc/self/environ, /etc/passwd,
a planted foreign file and nowhere; a hard link to the foreign file; directories named *.yaml; a
character device (when run as root); YAML alias bombs and self-referencing aliases; sparse 1 GiB
files; deep nesting; integers too large for a float, .nan/.inf and duplicate keys next to valid
sibling ideas; binary garbage; names with terminal escape codes; dot-files (with valid content,
which must not be admitted) and non-YAML names; and plain valid ideas.

The daemon runs with a fake ANTHROPIC_API_KEY in its environment and a fast custom worker. The
runner checks: no hang (the timeout), no crash (exit status 0, no traceback), every valid idea
admitted and done (and no dot-file's idea admitted), no file under runs/ holding the key, the
foreign file's marker or /etc/passwd's first line, no escape character in the daemon's output;
and measures the daemon's peak RSS (VmHWM, sampled from /proc) and the wall time. It prints one
JSON object and exits non-zero if a check fails. tests/daemon/test_hostile_inbox.py runs it at CI
size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from orze.layout import Layout  # noqa: E402
from orze.store.leaderboard import read_rows  # noqa: E402

BOMB = ("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        + "".join(f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")))
ESCAPES = ("\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "line\rover", "\x1b[2J", "bidi\u202egpj")


def _load_stress():
    spec = importlib.util.spec_from_file_location("orze_stress", REPO / "scripts" / "stress.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Generator:
    """Writes hostile entries into `inbox`; records the seeds of the valid ideas it wrote."""

    def __init__(self, inbox: Path, foreign: Path, seed: int = 0):
        self.inbox, self.foreign, self.rng = inbox, foreign, random.Random(seed)
        self.valid: set[int] = set()      # seeds that must be admitted and done
        self.hidden: set[int] = set()     # seeds in dot-files: must never be admitted
        self.kinds: Counter = Counter()
        self._next = 1_000_000
        self._i = 0

    def _seed(self) -> int:
        self._next += 1
        return self._next

    def _name(self, kind: str, suffix: str = ".yaml") -> Path:
        self._i += 1
        self.kinds[kind] += 1
        return self.inbox / f"{self._i:06d}-{kind}{suffix}"

    def _valid_text(self, hidden: bool = False) -> str:
        s = self._seed()
        (self.hidden if hidden else self.valid).add(s)
        return f"seed: {s}\n"

    # One writer per kind of entry.
    def fifo(self): os.mkfifo(self._name("fifo"))
    def link_zero(self): os.symlink("/dev/zero", self._name("link-zero"))
    def link_environ(self): os.symlink("/proc/self/environ", self._name("link-environ"))
    def link_passwd(self): os.symlink("/etc/passwd", self._name("link-passwd"))
    def link_foreign(self): os.symlink(self.foreign, self._name("link-foreign"))
    def hardlink_foreign(self): os.link(self.foreign, self._name("hardlink-foreign"))
    def dangling(self): os.symlink(self.inbox / "nowhere" / "x.yaml", self._name("dangling"))

    def directory(self):
        d = self._name("dir")
        d.mkdir()
        (d / "inner.yaml").write_text(self._valid_text(hidden=True))

    def device(self):
        try:
            os.mknod(self._name("device"), 0o600 | 0o020000, os.makedev(1, 3))  # like /dev/null
        except (PermissionError, OSError):
            self.kinds["device"] -= 1
            self.alias_bomb()

    def alias_bomb(self): self._name("alias-bomb").write_text(BOMB)
    def recursive_alias(self): self._name("recursive-alias").write_text("a: &a [*a, 1]\n")

    def huge_sparse(self):
        p = self._name("huge-sparse")
        with open(p, "wb") as f:
            f.write(b"seed: 1\nrationale: ")
            f.truncate(1 << 30)

    def deep(self): self._name("deep").write_text("[" * 50_000)

    def huge_int(self):
        self._name("huge-int").write_text(f"- {self._valid_text().strip()}\n- seed: {'9' * 500}\n"
                                          f"- {self._valid_text().strip()}\n- seed: {10 ** 400}\n")

    def non_finite(self):
        self._name("non-finite").write_text(f"- seed: .nan\n- {self._valid_text().strip()}\n"
                                            f"- learning_rate: .inf\n- {self._valid_text().strip()}\n")

    def duplicate_keys(self):
        self._name("dup-keys").write_text(f"- seed: 5\n  seed: 6\n- {self._valid_text().strip()}\n")

    def garbage(self): self._name("garbage").write_bytes(bytes(self.rng.randrange(256) for _ in range(300)))

    def escape_name(self):
        self._i += 1
        self.kinds["escape-name"] += 1
        esc = self.rng.choice(ESCAPES)
        (self.inbox / f"{self._i:06d}-{esc}.yaml").write_text(self._valid_text())

    def dotfile(self):
        p = self._name("dot", ".yaml.tmp")
        p = p.with_name("." + p.name)
        p.write_text(self._valid_text(hidden=True))
        os.utime(p, (time.time() - 7200, time.time() - 7200))   # a stray, reported once

    def not_yaml(self): self._name("notes", ".txt").write_text(self._valid_text(hidden=True))
    def valid_file(self): self._name("valid").write_text(self._valid_text())

    ROTATION = ("fifo", "link_zero", "link_environ", "link_passwd", "link_foreign", "hardlink_foreign",
                "dangling", "directory", "device", "alias_bomb", "recursive_alias", "huge_sparse", "deep",
                "huge_int", "non_finite", "duplicate_keys", "garbage", "escape_name", "dotfile", "not_yaml",
                "valid_file")

    def generate(self, n: int) -> None:
        for k in range(n):
            getattr(self, self.ROTATION[k % len(self.ROTATION)])()


def _vmhwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _scan_runs(runs: Path, needles: dict[str, bytes]) -> tuple[Counter, int]:
    """How many regular files under runs/ hold each needle (links are never followed), and the
    largest rejection record's size."""
    found: Counter = Counter()
    biggest = 0
    for dirpath, dirnames, filenames in os.walk(runs, followlinks=False):
        for f in filenames:
            p = Path(dirpath) / f
            try:
                st = os.lstat(p)
                if not (st.st_mode & 0o170000 == 0o100000) or st.st_nlink > 1 or st.st_size > 64 << 20:
                    continue   # quarantined links, FIFOs, the hard link and sparse files: not written by Orze
                data = p.read_bytes()
            except OSError:
                continue
            if p.parent.name == "rejected":
                biggest = max(biggest, len(data))
            for what, needle in needles.items():
                if needle in data:
                    found[what] += 1
    return found, biggest


def run(root: Path, entries: int = 10_000, timeout_s: float = 900, seed: int = 0) -> dict:
    stress = _load_stress()
    layout: Layout = stress.setup(root)
    foreign = root / "foreign-notes.txt"
    marker = f"FOREIGN-MARKER-{secrets.token_hex(8)}"
    foreign.write_text(f"{marker}\n")
    key = f"sk-ant-FAKE-{secrets.token_hex(16)}"
    gen = Generator(layout.inbox, foreign, seed)
    gen.generate(entries)
    env = dict(os.environ, ANTHROPIC_API_KEY=key,
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = root / "daemon.log"
    t0 = time.time()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "orze", "run", "--until-idle", "--node", "hostile",
                                 "--log-level", "info", "--root", str(root)], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=out, start_new_session=True)
        peak_kb, hang = 0, False
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vmhwm_kb(proc.pid) or 0)
            if time.time() - t0 > timeout_s:
                hang = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            time.sleep(0.1)
    wall = time.time() - t0
    output = log_path.read_bytes()
    done = {r.get("config", {}).get("seed") for r in read_rows(layout.leaderboard) if r.get("status") == "done"}
    passwd_head = Path("/etc/passwd").read_bytes().split(b"\n")[0] if Path("/etc/passwd").exists() else b""
    needles = {"api_key": key.encode(), "foreign_file": marker.encode()}
    if passwd_head:
        needles["etc_passwd"] = passwd_head
    found, biggest = _scan_runs(layout.runs, needles)
    left = [n for n in os.listdir(layout.inbox) if not n.startswith(".") and n.endswith((".yaml", ".yml"))]
    counts = {
        "entries": entries, "kinds": dict(gen.kinds), "wall_s": round(wall, 1), "hang": hang,
        "exit_status": proc.returncode, "crash": (not hang and proc.returncode != 0) or b"Traceback" in output,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "valid_expected": len(gen.valid), "valid_done": len(gen.valid & done),
        "hidden_admitted": len(gen.hidden & done),
        "secrets_found": found.get("api_key", 0) + (key.encode() in output),
        "foreign_found": found.get("foreign_file", 0) + found.get("etc_passwd", 0),
        "escape_in_output": output.count(b"\x1b"),
        "daemon_errors": output.count(b" error: "),   # e.g. a file admission itself failed on
        "rejection_records": len(list(layout.rejected.glob("*.json"))),
        "largest_record_bytes": biggest,
        "quarantined": len(os.listdir(layout.quarantine)) if layout.quarantine.exists() else 0,
        "idea_files_left_in_inbox": len(left),
    }
    counts["ok"] = (not hang and not counts["crash"] and counts["valid_done"] == counts["valid_expected"]
                    and counts["hidden_admitted"] == 0 and counts["secrets_found"] == 0
                    and counts["foreign_found"] == 0 and counts["escape_in_output"] == 0
                    and counts["daemon_errors"] == 0
                    and counts["idea_files_left_in_inbox"] == 0)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=None, help="run in this (new) directory and keep it")
    a = ap.parse_args()
    if a.keep is not None:
        counts = run(a.keep, a.entries, a.timeout, a.seed)
    else:
        with tempfile.TemporaryDirectory(prefix="orze-hostile-") as d:
            counts = run(Path(d) / "r", a.entries, a.timeout, a.seed)
    print(json.dumps(counts, indent=2))
    return 0 if counts["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
