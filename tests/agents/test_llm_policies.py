"""The claude, gemini and openai policies with the real SDKs against local protocol servers
(openai both plain and streamed)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orze.agent_config import AgentSpec
from orze.agents import ledger
from orze.agents.keys import MissingKeyError, redact
from orze.agents.loop import AgentLoop
from orze.agents.policies import make_policy
from orze.store.leaderboard import append_row

from .conftest import REPO, make_row
from .servers import ScriptedServer

SECRET = "sk-test-SECRET-a1b2c3d4e5f6g7h8"
PROTOCOLS = {"anthropic": ("claude", "ANTHROPIC_API_KEY", "claude-sonnet-4-6"),
             "gemini": ("gemini", "GEMINI_API_KEY", "gemini-2.5-flash"),
             "openai": ("openai", "OPENAI_API_KEY", "gpt-4.1-mini"),
             "openai-stream": ("openai", "OPENAI_API_KEY", "gpt-4.1-mini")}


def wire(protocol):
    """The wire protocol a test's server speaks."""
    return "openai" if protocol.startswith("openai") else protocol

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
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_BASE_URL",
                "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(PROTOCOLS[request.param][1], SECRET)
    return request.param


class FakeClock:
    """The loop's clock and sleep: waits pass at once and are added up."""
    def __init__(self):
        self.now = 1_800_000_000.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s
        self.slept += s


def make_loop(layout, protocol, url, spec_kw=None, clock=None, **options):
    policy_name, _, model = PROTOCOLS[protocol]
    if protocol.startswith("openai"):
        url += "/v1"
        options.setdefault("stream", protocol == "openai-stream")
    opts = {"base_url": url, "timeout_s": 2.0, "backoff_s": 0.01, "retries": 3, **options}
    spec = AgentSpec(name=f"{policy_name}1", policy=policy_name, model=model, ideas_per_cycle=2,
                     queue_limit=10, interval_s=0, options=opts, **(spec_kw or {}))
    clock = clock or FakeClock()
    return AgentLoop(layout, spec, make_policy(spec, layout), log=lambda m: None, sleep=clock.sleep,
                     clock=clock)


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
    with ScriptedServer(wire(protocol), [("text", GOOD)]) as server:
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
    if policy_name == "openai":  # a server on this machine is self-hosted: free
        assert t.cost_usd == 0 and ledger.cost_usd(model, 120, 80) > 0
        assert req["path"] == "/v1/chat/completions" and req["json"].get("stream", False) == (protocol == "openai-stream")
        assert req["json"]["max_tokens"] == 4096 and req["json"]["messages"][0]["role"] == "system"
    else:
        assert t.cost_usd == pytest.approx(ledger.cost_usd(model, 120, 80)) and t.cost_usd > 0
    transcripts = list((layout.agent_dir(f"{policy_name}1") / "transcripts").glob("*.json"))
    assert len(transcripts) == 1 and "siglip retnet" in transcripts[0].read_text()
    assert_no_secret(layout.root)


def test_malformed_reply_gets_one_repair_round(layout, protocol):
    script = [("text", "I would try a recurrent encoder next, it seems promising."), ("text", GOOD)]
    with ScriptedServer(wire(protocol), script) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert len(server.requests) == 2 and report.repaired and report.submitted == 2
    repair = server.user_texts(1)[-1]
    assert "no YAML ideas found" in repair and "Reply with 2 new idea(s)" in repair


def test_rule_breaking_batch_is_repaired_with_quoted_errors(layout, protocol):
    append_row(layout, make_row(1, 0.8, {"backbone": "vjepa2", "temporal_encoder": "zipformer"}))
    breaking = ("```yaml\n- {backbone: vjepa2, temporal_encoder: zipformer, epochs: 30}\n"
                "- {backbone: vjepa2, temporal_encoder: zipformer, lr: 3e-4}\n```")
    with ScriptedServer(wire(protocol), [("text", breaking), ("text", GOOD)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    repair = server.user_texts(1)[-1]
    assert "'lr': unknown field" in repair
    assert "rules.min_other_backbone" in repair and "rules.min_other_encoder" in repair
    assert (report.proposed, report.submitted, report.rejected) == (4, 2, 2)
    rejected = [json.loads(l) for l in (layout.agent_dir(report_name(protocol)) / "rejected.jsonl").open()]
    assert [r["stage"] for r in rejected] == ["before repair"] * 2


def report_name(protocol):
    return f"{PROTOCOLS[protocol][0]}1"


def rejected_of(layout, protocol):
    path = layout.agent_dir(report_name(protocol)) / "rejected.jsonl"
    return [json.loads(l) for l in path.open()] if path.exists() else []


def test_repair_keeps_the_ideas_that_passed_even_if_the_repair_reply_is_prose(layout, protocol):
    first = ("```yaml\n- {idea_name: keep me, backbone: siglip2, temporal_encoder: retnet, learning_rate: 3e-4}\n"
             "- {idea_name: typo, backbone: dinov2_b, temporal_encoder: bimamba, lr: 3e-4}\n```")
    with ScriptedServer(wire(protocol), [("text", first), ("text", "Sorry, I cannot help.")]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    repair = server.user_texts(1)[-1]
    assert "Reply with 1 new idea(s)" in repair and "idea 1 (keep me)" in repair
    assert "idea 2 (typo): 'lr': unknown field" in repair
    ideas = inbox_ideas(layout)
    assert [(i["idea_name"], i["learning_rate"]) for i in ideas] == [("keep me", 3e-4)]
    assert (report.proposed, report.submitted, report.rejected) == (2, 1, 1)
    assert "repair reply: no YAML ideas found" in report.detail
    rej = rejected_of(layout, protocol)
    assert [(r["stage"], r["idea"]["idea_name"]) for r in rej] == [("before repair", "typo")]
    t = ledger.totals(layout, report_name(protocol))
    assert t.proposed == t.submitted + t.rejected == 2


def test_still_broken_after_repair_is_rejected_with_reasons(layout, protocol):
    append_row(layout, make_row(1, 0.8, {"backbone": "vjepa2", "temporal_encoder": "zipformer"}))
    stubborn = ("```yaml\n- {backbone: siglip2, temporal_encoder: retnet}\n"
                "- {backbone: siglip2, temporal_encoder: hybrid, colour: red}\n```")
    with ScriptedServer(wire(protocol), [("text", stubborn)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert len(server.requests) == 2 and report.submitted == 1
    assert (report.proposed, report.rejected) == (4, 3)
    rej = rejected_of(layout, protocol)
    assert [r["stage"] for r in rej] == ["before repair", "after repair", "after repair"]
    assert "same configuration as idea 1" in rej[1]["reasons"][0]
    assert rej[-1]["stage"] == "after repair" and "'colour': unknown field" in rej[-1]["reasons"][0]
    assert [i["temporal_encoder"] for i in inbox_ideas(layout)] == ["retnet"]


def test_retry_after_is_honoured(layout, protocol):
    script = [("status", 429, {"retry-after": "5"}), ("status", 503, {"retry-after-ms": "1500"}),
              ("text", GOOD)]
    clock = FakeClock()
    with ScriptedServer(wire(protocol), script) as server:
        report = make_loop(layout, protocol, server.url, clock=clock).run_cycle()
    assert report.submitted == 2 and len(server.requests) == 3
    assert clock.slept >= 6.5          # 5 s, then 1.5 s, although backoff_s is 0.01


def test_a_long_retry_after_ends_the_cycle_and_the_agent_waits_it(layout, protocol):
    clock = FakeClock()
    with ScriptedServer(wire(protocol), [("status", 429, {"retry-after": "900"}), ("text", GOOD)]) as server:
        loop = make_loop(layout, protocol, server.url, clock=clock, max_retry_after_s=60)
        reports = loop.run(cycles=2)
    assert [r.status for r in reports] == ["error", "submitted"] and len(server.requests) == 2
    assert "retry after 900s" in reports[0].detail
    assert clock.slept >= 900


def test_permanent_error_pauses_the_agent_and_names_the_endpoint(layout, protocol):
    from orze.agents import health
    clock = FakeClock()
    with ScriptedServer(wire(protocol), [("status", 401)]) as server:
        loop = make_loop(layout, protocol, server.url, clock=clock,
                         spec_kw={"pause_s": 3600, "failure_backoff_s": 10})
        reports = loop.run(cycles=3)
    assert [r.status for r in reports] == ["error"] * 3
    assert len(server.requests) == 3                 # not retried, and one call per pause
    assert clock.slept >= 2 * 3600
    h = health.load(layout, report_name(protocol))
    assert h.state == "paused" and "permanent error" in h.reason and "401" in h.reason
    assert server.url in reports[0].detail           # the endpoint is named


def test_unusable_replies_back_off_then_open_the_circuit(layout, protocol):
    from orze.agents import health
    clock = FakeClock()
    with ScriptedServer(wire(protocol), [("text", "no ideas today")]) as server:
        loop = make_loop(layout, protocol, server.url, clock=clock,
                         spec_kw={"failure_backoff_s": 10, "failure_backoff_max_s": 15,
                                  "pause_after_failures": 3, "pause_s": 1000})
        loop.run(cycles=3)
    assert len(server.requests) == 6                 # proposal + repair per cycle
    h = health.load(layout, report_name(protocol))
    assert h.state == "paused" and "3 failing cycles" in h.reason
    states = [json.loads(l) for l in ledger.ledger_path(layout, report_name(protocol)).open()
              if '"health"' in l]
    waits = [round(s["until"] - s["since"]) for s in states]
    assert [s["state"] for s in states] == ["backing off", "backing off", "paused"]
    assert waits == [10, 15, 1000]                   # 10, 20 capped at 15, then the pause
    assert clock.slept >= 25
    health.resume(layout, report_name(protocol))
    assert health.load(layout, report_name(protocol)).state == "ok"


def test_connection_error_names_the_endpoint(layout, protocol):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                        # nothing listens there
    report = make_loop(layout, protocol, f"http://127.0.0.1:{port}", retries=1).run_cycle()
    assert report.status == "error" and f"127.0.0.1:{port}" in report.detail


def test_transcripts_are_pruned(layout, protocol):
    with ScriptedServer(wire(protocol), [("text", GOOD)]) as server:
        loop = make_loop(layout, protocol, server.url, transcripts_keep=3)
        for _ in range(3):
            loop.run_cycle()
            for p in layout.inbox.glob("*.yaml"):
                p.unlink()
            for f in layout.runs.joinpath("fingerprints").glob("*"):
                f.unlink()
    # each GOOD reply repeats configs already pending? no: the inbox is emptied each time
    files = list((layout.agent_dir(report_name(protocol)) / "transcripts").glob("*.json"))
    assert len(server.requests) == 3 and len(files) == 3


def test_429_is_retried_then_succeeds(layout, protocol):
    with ScriptedServer(wire(protocol), [("status", 429), ("status", 503), ("text", GOOD)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()
    assert report.submitted == 2 and len(server.requests) == 3
    calls = [json.loads(l) for l in ledger.ledger_path(layout, report_name(protocol)).open()
             if '"call"' in l]
    assert calls[0]["attempts"] == 3 and calls[0]["ok"]


def test_persistent_errors_give_up_cleanly(layout, protocol):
    with ScriptedServer(wire(protocol), [("status", 429)]) as server:
        loop = make_loop(layout, protocol, server.url, retries=2, spec_kw={"failure_backoff_s": 0})
        reports = loop.run(cycles=2)                    # never raises
    assert [r.status for r in reports] == ["error", "error"]
    assert "gave up after 2 attempts" in reports[0].detail and "429" in reports[0].detail
    assert len(server.requests) == 4
    t = ledger.totals(layout, report_name(protocol))
    assert t.failed_calls == 2 and t.submitted == 0
    assert not list(layout.inbox.glob("*.yaml"))
    assert_no_secret(layout.root)


def test_timeouts_are_retried_then_given_up(layout, protocol):
    with ScriptedServer(wire(protocol), [("sleep", 3.0)]) as server:
        report = make_loop(layout, protocol, server.url, timeout_s=0.3, retries=2).run_cycle()
    assert report.status == "error" and "gave up after 2 attempts" in report.detail
    assert "Timeout" in report.detail
    assert len(server.requests) == 2
    assert_no_secret(layout.root)


def test_bad_request_is_not_retried(layout, protocol):
    with ScriptedServer(wire(protocol), [("status", 400)]) as server:
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


def test_more_ideas_than_asked_for_are_cut_without_a_repair(layout, protocol):
    three = ("```yaml\n- {backbone: siglip2, temporal_encoder: retnet}\n"
             "- {backbone: dinov2_b, temporal_encoder: hybrid}\n- {backbone: convnext, temporal_encoder: xlstm}\n```")
    with ScriptedServer(wire(protocol), [("text", three)]) as server:
        report = make_loop(layout, protocol, server.url).run_cycle()     # asks for 2
    assert len(server.requests) == 1 and not report.repaired
    assert (report.proposed, report.submitted, report.rejected) == (3, 2, 1)
    assert "more ideas than the 2 asked for" in rejected_of(layout, protocol)[0]["reasons"][0]


def test_a_stop_during_retries_ledgers_the_attempts_made(layout, protocol):
    with ScriptedServer(wire(protocol), [("status", 503)]) as server:
        loop = make_loop(layout, protocol, server.url, retries=5)
        loop.should_stop = lambda: len(server.requests) >= 2   # the lease goes after two tries
        loop.policy.should_stop = loop.should_stop
        report = loop.run_cycle()
    assert report.status == "stopped" and len(server.requests) == 2
    (call,) = [json.loads(l) for l in ledger.ledger_path(layout, report_name(protocol)).open() if '"call"' in l]
    assert call["attempts"] == 2 and not call["ok"] and call["error"].startswith("stopped")
