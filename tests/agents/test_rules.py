import pytest

from orze.agents.rules import RulesError, enforce, load_rules, parse_rules, render_rules
from orze.space import check_idea

RULES = """---
min_other_backbone: 1
min_other_encoder: 1
banned:
  - {backbone: convnext, temporal_encoder: xlstm}
  - {loss: bce, pooling: [last, max]}
caps:
  max_ideas_per_cycle: 4
  max_same_backbone: 2
---
Prefer one hypothesis per idea.
"""


def cfg(space, **kw):
    check = check_idea(space, kw)
    assert check.ok, check.errors
    return check.config


def test_front_matter_parsed_and_rendered(space):
    rules = parse_rules(RULES, space)
    assert rules.min_other_backbone == 1 and rules.caps.max_same_backbone == 2
    text = render_rules(rules)
    assert "other than the current leader's" in text
    assert "Banned (never propose): backbone: convnext, temporal_encoder: xlstm" in text
    assert "pooling: last or max" in text
    assert "Prefer one hypothesis per idea." in text


def test_bad_rules_name_file_and_field(space, tmp_path):
    p = tmp_path / "rules.md"
    p.write_text("---\nmin_other_backbone: 1\nmax_fun: 3\n---\n")
    with pytest.raises(RulesError, match=r"rules\.md: max_fun"):
        load_rules(p, space)
    p.write_text("---\nbanned:\n  - {backbone: resnet}\n---\n")
    with pytest.raises(RulesError, match=r"banned\[0\]\.backbone: 'resnet' is not allowed"):
        load_rules(p, space)
    p.write_text("---\nbanned:\n  - {colour: red}\n---\n")
    with pytest.raises(RulesError, match=r"banned\[0\]\.colour: unknown dimension"):
        load_rules(p, space)
    assert load_rules(tmp_path / "missing.md").min_other_backbone == 0


def test_banned_regions(space):
    rules = parse_rules(RULES, space)
    batch = [cfg(space, backbone="convnext", temporal_encoder="xlstm"),
             cfg(space, backbone="convnext", temporal_encoder="retnet"),
             cfg(space, loss="bce", pooling="max"),
             cfg(space, loss="bce", pooling="mean")]
    v = enforce(rules, batch, None)
    assert sorted(v.rejected) == [0, 2]
    assert "rules.banned[0]" in v.rejected[0][0] and "rules.banned[1]" in v.rejected[2][0]


def test_fused_backbone_ban(space):
    rules = parse_rules("---\nbanned:\n  - {backbone: 'siglip2+convnext'}\n---\n", space)
    batch = [cfg(space, backbone=["convnext", "siglip2"]), cfg(space, backbone="siglip2")]
    assert sorted(enforce(rules, batch, None).rejected) == [0]


def test_diversity_budget_rejects_crowding_ideas(space):
    rules = parse_rules("---\nmin_other_backbone: 1\n---\n", space)
    leader = cfg(space, backbone="vjepa2")
    all_leader = [cfg(space, backbone="vjepa2", epochs=e) for e in (5, 10, 15)]
    v = enforce(rules, all_leader, leader)
    assert sorted(v.rejected) == [0, 1, 2]
    assert "min_other_backbone" in v.rejected[2][0] and "(vjepa2)" in v.rejected[2][0]
    mixed = all_leader + [cfg(space, backbone="siglip2")]
    assert enforce(rules, mixed, leader).ok
    assert enforce(rules, all_leader, None).ok          # no leader yet: no budget
    two = parse_rules("---\nmin_other_encoder: 2\n---\n", space)
    lead = cfg(space, temporal_encoder="zipformer")
    batch = [cfg(space, epochs=5), cfg(space, epochs=10), cfg(space, temporal_encoder="retnet")]
    # one other encoder only: leader-encoder ideas are dropped, latest first, until compliant
    assert sorted(enforce(two, batch, lead).rejected) == [0, 1]


def test_caps(space):
    rules = parse_rules(RULES, space)
    batch = [cfg(space, backbone="siglip2", temporal_encoder=e) for e in ("retnet", "bimamba", "hybrid")]
    batch += [cfg(space, backbone="dinov2_b"), cfg(space, backbone="dinov3_b")]
    v = enforce(rules, batch, None)
    assert "max_same_backbone" in v.rejected[2][0]
    assert "max_ideas_per_cycle" in v.rejected[4][0]
    assert sorted(v.rejected) == [2, 4]
