import json

import yaml

from orze.agent_config import AgentSpec
from orze.agents import ledger
from orze.agents.context import read_history
from orze.agents.loop import AgentLoop
from orze.agents.policies import make_policy
from orze.store.atomic import atomic_write_json
from orze.store.leaderboard import append_row

from .conftest import make_row


def loop_for(layout, **kw):
    spec = AgentSpec(name=kw.pop("name", "rnd"), policy=kw.pop("policy", "random"), interval_s=0, **kw)
    return AgentLoop(layout, spec, make_policy(spec, layout), log=lambda m: None, sleep=lambda s: None)


def inbox(layout):
    return [x for p in sorted(layout.inbox.glob("*.yaml")) for x in yaml.safe_load(p.read_text())]


def test_backpressure(layout):
    for i in range(3):
        atomic_write_json(layout.queue / f"q{i}.json", {"config": {}})
    loop = loop_for(layout, queue_limit=3, ideas_per_cycle=4)
    assert loop.run_cycle().status == "backpressure"
    assert inbox(layout) == []
    (layout.queue / "q0.json").unlink()
    report = loop.run_cycle()
    assert report.status == "submitted" and report.submitted == 1   # only the room left


def test_max_ideas_and_budget_stop_the_loop(layout):
    loop = loop_for(layout, queue_limit=100, ideas_per_cycle=3, max_ideas=7)
    reports = loop.run(cycles=10)
    assert [r.submitted for r in reports if r.status == "submitted"] == [3, 3, 1]
    assert reports[-1].status == "budget" and len(inbox(layout)) == 7
    ledger.record_call(layout, "tok", "claude-sonnet-4-6", 900, 200, 0.1)
    assert loop_for(layout, name="tok", budget_tokens=1000).run(cycles=3)[0].status == "budget"
    assert loop_for(layout, name="tok", budget_usd=0.001).run(cycles=3)[0].status == "budget"
    assert loop_for(layout, name="tok", budget_usd=1.0, queue_limit=50, seed=9).run_cycle().status == "submitted"


def test_rules_are_reread_every_cycle_and_rejections_recorded(layout):
    layout.rules_prompt.write_text("No machine-checked rules yet.\n")
    loop = loop_for(layout, queue_limit=100, ideas_per_cycle=4, seed=1)
    assert loop.run_cycle().submitted == 4
    layout.rules_prompt.write_text("---\nbanned:\n  - {pooling: [attention, mean, last, max]}\n---\n")
    report = loop.run_cycle()
    assert report.submitted == 0 and report.rejected == 4
    rejected = [json.loads(l) for l in (layout.agent_dir("rnd") / "rejected.jsonl").open()]
    assert len(rejected) == 4 and all("rules.banned[0]" in r["reasons"][0] for r in rejected)
    layout.rules_prompt.write_text("---\nmin_other_backbone: [1\n---\n")
    bad = loop.run_cycle()
    assert bad.status == "error" and "rules.md" in bad.detail


def test_duplicates_of_finished_runs_are_rejected(layout, space):
    loop = loop_for(layout, queue_limit=100, ideas_per_cycle=2, seed=4)
    ideas = loop.policy.propose(read_history(layout, space), 2)
    for i, idea in enumerate(ideas):
        append_row(layout, make_row(i, 0.5, idea))
    fresh = loop_for(layout, queue_limit=100, ideas_per_cycle=2, seed=4)
    report = fresh.run_cycle()
    # Both repeats are rejected; an offline policy then resamples fresh ideas in their place.
    assert report.rejected == 2 and report.submitted == 2
    reasons = [json.loads(l)["reasons"] for l in (layout.agent_dir("rnd") / "rejected.jsonl").open()]
    assert all("already run or is queued" in r[0] for r in reasons)


def test_ledger_summarise(layout):
    ledger.record_call(layout, "a", "gemini-2.5-flash", 1_000_000, 100_000, 1.5)
    ledger.record_call(layout, "a", "gemini-2.5-flash", 10, 10, 0.5, ok=False, error="429")
    ledger.append(layout, "b", {"kind": "cycle", "proposed": 4, "submitted": 3, "rejected": 1})
    with open(ledger.ledger_path(layout, "b"), "ab") as f:
        f.write(b'{"kind": "cycle", "submitted": 50')          # a torn last line is skipped
    s = ledger.summarise(layout)
    assert set(s) == {"a", "b"}
    assert s["a"].calls == 2 and s["a"].failed_calls == 1
    assert abs(s["a"].cost_usd - (0.30 + 0.25 + (10 * 0.3 + 10 * 2.5) / 1e6)) < 1e-9
    assert (s["b"].proposed, s["b"].submitted, s["b"].rejected) == (4, 3, 1)
    from orze.agent_config import ClaudeOptions, OpenAIOptions
    assert ledger.price_for("x", ClaudeOptions(price_in_per_mtok=2, price_out_per_mtok=4)) == (2.0, 4.0)
    assert ledger.price_for("gpt-4o", OpenAIOptions()) == (2.5, 10.0)
    assert ledger.price_for("gpt-4o", OpenAIOptions(base_url="http://10.0.0.5:8000/v1")) == (0.0, 0.0)
    assert ledger.price_for("claude-sonnet-4-6", ClaudeOptions(base_url="http://127.0.0.1:1")) == (3.0, 15.0)


def test_offline_policy_that_favours_the_leader_is_resampled_not_starved(layout):
    """An offline policy cannot be repaired by argument; when its batch breaks a diversity rule
    the loop draws more candidates and submits a compliant batch instead of nothing, forever."""
    append_row(layout, make_row(1, 0.9, {"backbone": "vjepa2"}))
    layout.rules_prompt.write_text("---\nmin_other_backbone: 1\ncaps:\n  max_same_backbone: 2\n---\n")
    loop = loop_for(layout, queue_limit=1000, ideas_per_cycle=4, seed=5,
                    options={"subspace": {"backbone": ["vjepa2"] * 5 + ["siglip2"]}})
    reports = loop.run(cycles=6)
    assert all(r.submitted >= 1 for r in reports), [(r.submitted, r.detail) for r in reports]
    assert any("more candidates to meet the rules" in r.detail for r in reports)
    for r in reports:
        assert r.proposed == r.submitted + r.rejected
    batches = [yaml.safe_load(p.read_text()) for p in sorted(layout.inbox.glob("*.yaml"))]
    for batch in batches:
        backbones = [i["backbone"] for i in batch]
        assert any(b != "vjepa2" for b in backbones) and backbones.count("vjepa2") <= 2


def single_backbone(layout):
    space = yaml.safe_load(layout.space_config.read_text())
    space["dimensions"]["backbone"]["choices"] = ["vjepa2"]
    space["dimensions"]["backbone"]["default"] = "vjepa2"
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))


def test_single_backbone_campaign_waives_the_impossible_rule_once(layout):
    """The shipped rules demand another backbone than the leader's; with one backbone in the space
    that can never be met. The rule is waived and reported once, and every cycle submits."""
    single_backbone(layout)
    append_row(layout, make_row(1, 0.9, {"backbone": "vjepa2", "temporal_encoder": "zipformer"}))
    messages = []
    spec = AgentSpec(name="rnd", policy="random", interval_s=0, queue_limit=1000, ideas_per_cycle=4)
    loop = AgentLoop(layout, spec, make_policy(spec, layout), log=messages.append, sleep=lambda s: None)
    reports = loop.run(cycles=4)
    assert [r.status for r in reports] == ["submitted"] * 4
    notices = [json.loads(l) for l in ledger.ledger_path(layout, "rnd").open() if '"notice"' in l]
    assert len(notices) == 1 and notices[0]["rule"] == "min_other_backbone"
    assert "only backbone vjepa2" in notices[0]["detail"] and "waived" in notices[0]["detail"]
    assert sum("cannot be met" in m for m in messages) == 1
    from orze.agents import health
    assert health.load(layout, "rnd").notices == [notices[0]["detail"]]
    # the encoder budget still holds: every batch has an encoder other than the leader's
    for p in layout.inbox.glob("*.yaml"):
        assert any(i["temporal_encoder"] != "zipformer" for i in yaml.safe_load(p.read_text()))


def test_feature_store_with_one_backbone_makes_the_rule_impossible(layout, space):
    from orze.agents.rules import Rules, impossible
    rules = Rules(min_other_backbone=1, min_other_encoder=1)
    leader = {"backbone": "vjepa2", "temporal_encoder": "zipformer"}
    assert impossible(rules, space, leader) == {}
    found = impossible(rules, space, leader, available_backbones={"vjepa2"})
    assert list(found) == ["min_other_backbone"] and "feature store" in found["min_other_backbone"]
    banned = Rules(min_other_encoder=1, banned=[{"temporal_encoder": [e for e in space.dimensions[
        "temporal_encoder"].choices if e != "zipformer"]}])
    assert list(impossible(banned, space, leader)) == ["min_other_encoder"]


def run_cli(layout, *args):
    import os
    import subprocess
    import sys

    from .conftest import REPO
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORZE_AGENT")}
    env["PYTHONPATH"] = str(REPO)
    env["COLUMNS"] = "300"   # rich wraps long messages at 80 columns without a terminal
    return subprocess.run([sys.executable, "-m", "orze", "agent", *args, "--root", str(layout.root)],
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_once_on_a_full_queue_says_so_and_exits(layout):
    layout.project_config.write_text("agents:\n  - {name: rnd, policy: random, queue_limit: 2}\n")
    for i in range(2):
        atomic_write_json(layout.queue / f"q{i}.json", {"config": {}})
    proc = run_cli(layout, "rnd", "--once")
    assert proc.returncode == 75 and "queue is full" in proc.stderr and "queue_limit 2" in proc.stderr


def test_cli_cycles_that_all_fail_exit_nonzero_and_resume(layout):
    from orze.agents import health
    layout.project_config.write_text(
        "agents:\n  - {name: rnd, policy: random, interval_s: 0, failure_backoff_s: 0}\n")
    layout.rules_prompt.write_text("---\nmin_other_backbon: 1\n---\n")     # a broken rules file
    proc = run_cli(layout, "rnd", "--cycles", "2")
    assert proc.returncode == 1 and "every cycle failed (2)" in proc.stderr
    assert "min_other_backbon" in proc.stderr
    h = health.load(layout, "rnd")
    assert h.state == "backing off" and h.failures == 2
    proc = run_cli(layout, "rnd", "--resume")
    assert proc.returncode == 0 and "was backing off" in proc.stdout
    assert health.load(layout, "rnd").state == "ok"
