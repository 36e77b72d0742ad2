"""The shape of the daemon: one module moves runs between states; configuration does not reach up
into the layers that use it."""

import ast
from pathlib import Path

ORZE = Path(__file__).resolve().parents[2] / "orze"

# The low-level moves of a run (queue entry, claim): only orze/store/transitions.py makes them
# (their own modules define them; tools and tests may use them directly).
MOVES = {("queue", "put"), ("queue", "take"), ("queue", "requeue"), ("claims", "claim"),
         ("claims", "release"), ("claims", "break_claim")}


def _calls(path: Path) -> set[tuple[str, str]]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Name):
            found.add((node.func.value.id, node.func.attr))
    return found


def test_only_the_transitions_module_moves_runs_between_states():
    movers = {}
    for path in ORZE.rglob("*.py"):
        rel = path.relative_to(ORZE).as_posix()
        if rel in ("store/queue.py", "store/claims.py"):
            continue
        hits = _calls(path) & MOVES
        if hits:
            movers[rel] = sorted(hits)
    assert list(movers) == ["store/transitions.py"], movers



def test_configuration_does_not_import_the_layers_above_it():
    tree = ast.parse((ORZE / "config.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    above = sorted(m for m in imported if m.startswith(("orze.agents", "orze.daemon", "orze.worker", "orze.cli")))
    assert above == [], f"orze/config.py imports {above}"
