import random

import pytest

from orze.agents.context import PromptError, estimate_tokens, load_template, read_history, render_prompt
from orze.agents.rules import load_rules
from orze.store.atomic import atomic_write_json
from orze.store.leaderboard import row_line

from .conftest import make_row

BACKBONES = ["vjepa2", "dinov3_b", "dinov3_l", "dinov2_b", "siglip2", "convnext"]
ENCODERS = ["zipformer", "retnet", "bimamba", "hybrid", "xlstm"]


def write_rows(layout, rows):
    with open(layout.leaderboard, "wb") as f:
        for r in rows:
            f.write(row_line(r))


def synthetic_rows(n, space, seed=0):
    """n leaderboard rows; configs built directly (canonical shape) to keep 100k rows fast."""
    rng = random.Random(seed)
    base = make_row(0, 0.5, {})["config"]
    rows = []
    for i in range(n):
        c = dict(base, backbone=rng.choice(BACKBONES), temporal_encoder=rng.choice(ENCODERS),
                 learning_rate=round(10 ** rng.uniform(-5, -2), 8), epochs=rng.choice([5, 10, 15, 20, 30]))
        failed = i % 97 == 0
        rows.append({"id": f"run-{i:06d}", "status": "failed" if failed else "done",
                     "metric": None if failed else rng.random(), "test_metric": 0.987654,
                     "test_auc": 0.876543, "config": c, "finished_at": 1e9 + i,
                     "error": "CUDA out of memory " * 40 if failed else None})
    return rows


def test_prompt_fits_budget_with_100k_rows(layout, space):
    rows = synthetic_rows(100_000, space)
    write_rows(layout, rows)
    rules = load_rules(layout.rules_prompt, space)
    history = read_history(layout, space, rules)
    assert len(history.rows) == 100_000 and len(history.failures) == 10
    template = load_template(layout)
    prompt = render_prompt(template, history, agent="claude1", n=4, budget_tokens=6000)
    assert estimate_tokens(prompt) <= 6000
    best = max(r["metric"] for r in rows if r["metric"] is not None)
    assert f"{best:.4f}" in prompt                          # the true leader is shown
    assert "(top 20 of" in prompt and "100000 runs in total" in prompt
    assert "{{" not in prompt
    # test metrics never reach an agent
    assert "0.9877" not in prompt and "0.987654" not in prompt and "0.8765" not in prompt
    assert "test_metric" not in prompt and "test_auc" not in prompt
    small = render_prompt(template, history, agent="claude1", n=4, budget_tokens=2200)
    assert estimate_tokens(small) <= 2200
    assert "to fit the token budget" in small
    with pytest.raises(PromptError, match="prompt_budget_tokens"):
        render_prompt(template, history, agent="claude1", n=4, budget_tokens=300)


def test_unknown_placeholder_is_an_error(layout, space):
    history = read_history(layout, space)
    with pytest.raises(PromptError, match=r"unknown placeholder \{\{leaderbord\}\}"):
        render_prompt("{{leaderbord}}", history, agent="a", n=1)


def test_history_reads_pending_and_failures(layout, space):
    ok = make_row(1, 0.7, {"backbone": "siglip2"})
    write_rows(layout, [ok, make_row(2, None, {"backbone": "convnext"}, status="failed",
                                     error="RuntimeError: shapes do not match")])
    queued = make_row(3, None, {"backbone": "dinov2_b"})["config"]
    atomic_write_json(layout.queue / "q1.json", {"id": "q1", "config": queued})
    running = make_row(4, None, {"backbone": "dinov3_l"})["config"]
    atomic_write_json(layout.run_dir("r1") / "idea.json", {"config": running})
    atomic_write_json(layout.run_dir("r2") / "result.json",   # finished, not yet on the leaderboard
                      {"id": "r2", "status": "misconfigured", "config": queued,
                       "error": "pooling: requested attention, built mean", "finished_at": 2e9})
    (layout.inbox / "x.yaml").write_text("- {backbone: vjepa2, temporal_encoder: xlstm}\n")
    history = read_history(layout, space)
    backbones = sorted(c["backbone"] for c in history.pending)
    assert backbones == ["dinov2_b", "dinov3_l", "vjepa2"]
    assert [f["id"] for f in history.failures] == ["run-000002", "r2"]
    assert history.leader()["id"] == "run-000001"
    prompt = render_prompt(load_template(layout), history, agent="a", n=3)
    assert "shapes do not match" in prompt and "built mean" in prompt
    assert "plus 3 queued/running" in prompt
