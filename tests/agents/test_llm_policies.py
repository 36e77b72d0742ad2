"""The claude and gemini policies with the real SDKs against local protocol servers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orze.agents import ledger
from orze.agents.keys import MissingKeyError, redact
from orze.agents.loop import AgentLoop
from orze.agents.policies import make_policy
from orze.agents.spec import AgentSpec
from orze.store.leaderboard import append_row

from .conftest import REPO, make_row
from .servers import ScriptedServer

SECRET = "sk-test-SECRET-a1b2c3d4e5f6g7h8"
PROTOCOLS = {"anthropic": ("claude", "ANTHROPIC_API_KEY", "claude-sonnet-4-6"),
             "gemini": ("gemini", "GEMINI_API_KEY", "gemini-2.5-flash")}

GOOD = """Based on the leaderboard I propose:

```yaml
- idea_name: siglip retnet
  rationale: a different backbone and encoder
  source: human            # not ours to claim: the loop stamps the truth
  agent: somebody-else
  backbone: siglip2
  temporal_encoder: retnet
  learning_rate: 3e-4
- idea_name: dino bimamba focal
  backbone: dinov2_b
  temporal_encoder: bimamba
  loss: focal
  focal_gamma: 3.0
```
"""


@pytest.fixture(params=sorted(PROTOCOLS))
def protocol(request, monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(PROTOCOLS[request.param][1], SECRET)
    return request.param


def make_loop(layout, protocol, url, **options):
    policy_name, _, model = PROTOCOLS[protocol]
    opts = {"base_url": url, "timeout_s": 2.0, "backoff_s": 0.01, "retries": 3, **options}
    spec = AgentSpec(name=f"{policy_name}1", policy=policy_name, model=model, ideas_per_cycle=2,
                     queue_limit=10, interval_s=0, options=opts)
    return AgentLoop(layout, spec, make_policy(spec, layout), log=lambda m: None, sleep=lambda s: None)


def inbox_ideas(layout):
    out = []
    for p in sorted(layout.inbox.glob("*.yaml")):
        out.extend(yaml.safe_load(p.read_text()))
    return out


def assert_no_secret(root: Path):
    for p in root.rglob("*"):
        if p.is_file():
            assert SECRET not in p.read_text(errors="replace"), f"API key leaked into {p}"


def test_good_reply_is_submitted_and_ledgered(layout, protocol):
    with ScriptedServer(protocol, [("text", GOOD)]) as server:
        loop = make_loop(layout, protocol, server.url)
        report = loop.run_cycle()
    assert report.status == "submitted" and report.submitted == 2 and not report.repaired
    ideas = inbox_ideas(layout)
    assert [i["backbone"] for i in ideas] == ["siglip2", "dinov2_b"]
    policy_name, _, model = PROTOCOLS[protocol]
    for idea in ideas:
        assert idea["agent"] == f"{policy_name}1" and idea["source"] == "llm" and idea["model"] == model
    assert ideas[0]["learning_rate"] == 3e-4 and ideas[1]["focal_gamma"] == 3.0
    # the request carried the rendered prompt and the key (in its header only)
    req = server.requests[0]
    prompt = server.user_texts(0)[0]
    assert "## Leaderboard" in prompt and "Propose exactly 2 new experiments" in prompt
    assert any(SECRET in v for v in req["headers"].values())
    t = ledger.totals(layout, f"{policy_name}1")
    assert (t.calls, t.tokens_in, t.tokens_out, t.submitted) == (1, 120, 80, 2)
    assert t.cost_usd == pytest.approx(ledger.cost_usd(model, 120, 80)) and t.cost_usd > 0
    transcripts = list((layout.agent_dir(f"{policy_name}1") / "transcripts").glob("*.json"))
    assert len(transcripts) == 1 and "siglip retnet" in transcripts[0].read_text()
    assert_no_secret(layout.root)


def test_malformed_reply_gets_one_repair_round(layout, protocol):
    script = [("text", "I would try a recurrent encoder next, it seems promising."), ("text", GOOD)]
    with ScriptedServer(protocol, script) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert len(server.requests) == 2 and report.repaired and report.submitted == 2
    repair = server.user_texts(1)[-1]
    assert "no YAML ideas found" in repair and "complete corrected batch of 2 ideas" in repair


def test_rule_breaking_batch_is_repaired_with_quoted_errors(layout, protocol):
    append_row(layout, make_row(1, 0.8, {"backbone": "vjepa2", "temporal_encoder": "zipformer"}))
    breaking = ("```yaml\n- {backbone: vjepa2, temporal_encoder: zipformer, epochs: 30}\n"
                "- {backbone: vjepa2, temporal_encoder: zipformer, lr: 3e-4}\n```")
    with ScriptedServer(protocol, [("text", breaking), ("text", GOOD)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    repair = server.user_texts(1)[-1]
    assert "'lr': unknown field" in repair
    assert "rules.min_other_backbone" in repair and "rules.min_other_encoder" in repair
    assert report.submitted == 2 and report.rejected == 0
    # the replaced first batch is kept, with reasons
    rejected = [json.loads(l) for l in (layout.agent_dir(report_name(protocol)) / "rejected.jsonl").open()]
    assert {r["stage"] for r in rejected} == {"replaced in repair round"} and len(rejected) == 2


def report_name(protocol):
    return f"{PROTOCOLS[protocol][0]}1"


def test_still_broken_after_repair_is_rejected_with_reasons(layout, protocol):
    append_row(layout, make_row(1, 0.8, {"backbone": "vjepa2", "temporal_encoder": "zipformer"}))
    stubborn = ("```yaml\n- {backbone: siglip2, temporal_encoder: retnet}\n"
                "- {backbone: siglip2, temporal_encoder: hybrid, colour: red}\n```")
    with ScriptedServer(protocol, [("text", stubborn)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert len(server.requests) == 2 and report.submitted == 1 and report.rejected == 1
    last = [json.loads(l) for l in (layout.agent_dir(report_name(protocol)) / "rejected.jsonl").open()][-1]
    assert last["stage"] == "after repair" and "'colour': unknown field" in last["reasons"][0]
    assert [i["temporal_encoder"] for i in inbox_ideas(layout)] == ["retnet"]


def test_429_is_retried_then_succeeds(layout, protocol):
    with ScriptedServer(protocol, [("status", 429), ("status", 503), ("text", GOOD)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert report.submitted == 2 and len(server.requests) == 3
    calls = [json.loads(l) for l in ledger.ledger_path(layout, report_name(protocol)).open()
             if '"call"' in l]
    assert calls[0]["attempts"] == 3 and calls[0]["ok"]


def test_persistent_errors_give_up_cleanly(layout, protocol):
    with ScriptedServer(protocol, [("status", 429)]) as server:
        loop = make_loop(layout, protocol, server.url, retries=2)
        reports = loop.run(cycles=2)                    # never raises
    assert [r.status for r in reports] == ["error", "error"]
    assert "gave up after 2 attempts" in reports[0].detail and "429" in reports[0].detail
    assert len(server.requests) == 4
    t = ledger.totals(layout, report_name(protocol))
    assert t.failed_calls == 2 and t.submitted == 0
    assert not list(layout.inbox.glob("*.yaml"))
    assert_no_secret(layout.root)


def test_timeouts_are_retried_then_given_up(layout, protocol):
    with ScriptedServer(protocol, [("sleep", 3.0)]) as server:
        report = make_loop(layout, protocol, server.url, timeout_s=0.3, retries=2).run_cycle()
    assert report.status == "error" and "gave up after 2 attempts" in report.detail
    assert "Timeout" in report.detail
    assert len(server.requests) == 2
    assert_no_secret(layout.root)


def test_bad_request_is_not_retried(layout, protocol):
    with ScriptedServer(protocol, [("status", 400)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert report.status == "error" and len(server.requests) == 1


def test_missing_key_names_the_variable(layout, protocol, monkeypatch):
    monkeypatch.delenv(PROTOCOLS[protocol][1])
    spec = AgentSpec(name="x", policy=PROTOCOLS[protocol][0])
    with pytest.raises(MissingKeyError, match=PROTOCOLS[protocol][1]):
        make_policy(spec, layout)


def test_cli_missing_key_exits_with_config_error(layout):
    (layout.project_config).write_text(
        "agents:\n  - {name: claude1, policy: claude}\n  - {name: rnd, policy: random}\n")
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-m", "orze", "agent", "claude1", "--root", str(layout.root),
                           "--once"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert "ANTHROPIC_API_KEY" in proc.stderr and "claude1" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "orze", "agent", "nope", "--root", str(layout.root)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78 and "configured: claude1, rnd" in proc.stderr


def test_redact_masks_keys(monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", SECRET)
    text = f"failed with key {SECRET}; headers x-api-key: sk-other-1234567890abc"
    out = redact(text)
    assert SECRET not in out and "sk-other-1234567890abc" not in out and "<GOOGLE_API_KEY>" in out


def test_anthropic_base_url_from_environment(layout, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    with ScriptedServer("anthropic", [("text", GOOD)]) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        spec = AgentSpec(name="c", policy="claude", ideas_per_cycle=2, queue_limit=10,
                         options={"backoff_s": 0.01})
        loop = AgentLoop(layout, spec, make_policy(spec, layout), log=lambda m: None)
        assert loop.run_cycle().submitted == 2
    assert server.requests[0]["path"] == "/v1/messages"
    assert server.requests[0]["json"]["model"] == "claude-sonnet-4-6"
