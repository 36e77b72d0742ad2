"""Validation: every way an idea can be invalid is rejected with a reason that names the field
and what is allowed; valid spellings are canonicalised."""

import math

import pytest

from orze.space import check_idea


def errors_for(space, idea):
    c = check_idea(space, idea)
    assert not c.ok, f"expected rejection of {idea}"
    return " | ".join(c.errors)


def test_default_space_has_108000_cells(default_space):
    assert default_space.cardinality() == 108_000


def test_learning_rate_as_string_is_accepted(default_space):
    # PyYAML reads 3e-4 (no dot) as a string.
    import yaml
    raw = yaml.safe_load("learning_rate: 3e-4\nbatch_size: '64'")
    assert isinstance(raw["learning_rate"], str)
    c = check_idea(default_space, raw)
    assert c.ok, c.errors
    assert c.config["learning_rate"] == pytest.approx(3e-4)
    assert c.config["batch_size"] == 64 and isinstance(c.config["batch_size"], int)


def test_unknown_key_names_field_and_suggests(default_space):
    msg = errors_for(default_space, {"learning_rat": 1e-3})
    assert "'learning_rat': unknown field" in msg and "did you mean 'learning_rate'" in msg


def test_collapsed_key_is_unknown(default_space):
    msg = errors_for(default_space, {"epochs: 40": None})
    assert "'epochs: 40': unknown field" in msg


@pytest.mark.parametrize("idea, needle", [
    ({"pooling": "atention"}, "pooling: 'atention' is not allowed (did you mean 'attention'?); allowed: one of attention, mean, last, max"),
    ({"batch_size": 48}, "batch_size: 48 is not allowed; allowed: one of 16, 32, 64, 128"),
    ({"batch_size": 32.5}, "batch_size: 32.5 is not an integer"),
    ({"batch_size": True}, "batch_size: True is not an integer"),
    ({"epochs": "ten"}, "epochs: 'ten' is not an integer"),
    ({"learning_rate": 0.5}, "learning_rate: 0.5 is out of range; allowed: a number in [1e-05, 0.01]"),
    ({"learning_rate": "fast"}, "learning_rate: 'fast' is not a number"),
    ({"learning_rate": float("nan")}, "learning_rate: nan is not a number"),
    ({"dropout": float("inf")}, "dropout: inf is not a number"),
    ({"dropout": -0.1}, "dropout: -0.1 is out of range; allowed: a number in [0, 0.5]"),
    ({"d_model": 1000}, "d_model: 1000 is out of range; allowed: an integer in [16, 512]"),
    ({"loss": "bce", "focal_gamma": 2.0}, "focal_gamma: only applies when loss is focal"),
    ({"loss": "focal", "label_smoothing": 0.1}, "label_smoothing: only applies when loss is label_smoothing"),
    ({"fusion": "concat"}, "fusion: only applies when backbone is a list of several"),
    ({"pooling": ["mean", "max"]}, "pooling: got a list"),
    ({"backbone": ["vjepa2", "vjepa2"]}, "repeated entries"),
    ({"backbone": ["vjepa2", "siglip2", "convnext", "dinov2_b"]}, "at most 3 can be fused"),
    ({"backbone": []}, "empty list"),
    ({"backbone": ["vjepa2", "resnet"]}, "'resnet' is not allowed"),
    ({"d_model": 30, "num_heads": 4}, "d_model: 30 must be divisible by num_heads (4)"),
    ({"priority": "urgent"}, "priority: 'urgent' is not allowed; allowed: one of critical, high, medium, low"),
    ({"source": "oracle"}, "source: 'oracle' is not allowed"),
    ({"rationale": {"nested": 1}}, "rationale: expected text"),
    ({"rationale": "x" * 5000}, "rationale: 5000 characters"),
])
def test_invalid_values_name_field_and_allowed(default_space, idea, needle):
    assert needle in errors_for(default_space, idea)


@pytest.mark.parametrize("raw", [["a", "list"], "backbone: vjepa2", 42, None])
def test_non_mapping_idea(default_space, raw):
    assert "an idea must be a mapping" in errors_for(default_space, raw)


def test_all_errors_reported_at_once(default_space):
    c = check_idea(default_space, {"pooling": "x", "epochs": 7, "bogus": 1})
    assert len(c.errors) == 3


def test_canonical_form_fills_defaults_and_drops_inapplicable(default_space):
    c = check_idea(default_space, {"loss": "bce"})
    assert c.ok
    assert "focal_gamma" not in c.config and "label_smoothing" not in c.config
    assert set(c.config) == {n for n, d in default_space.dimensions.items()
                             if not d.when} | set()
    assert c.config["pooling"] == default_space.dimensions["pooling"].default


def test_fusion_lists_sorted_and_singletons_flattened(default_space):
    a = check_idea(default_space, {"backbone": ["vjepa2", "dinov3_b"]}).config
    assert a["backbone"] == ["dinov3_b", "vjepa2"] and a["fusion"] == "concat"
    b = check_idea(default_space, {"backbone": ["siglip2"]}).config
    assert b["backbone"] == "siglip2" and "fusion" not in b


def test_floats_normalised(default_space):
    a = check_idea(default_space, {"learning_rate": 0.000300000000001}).config
    assert a["learning_rate"] == 0.0003
    assert not math.isnan(a["dropout"])


def test_metadata_kept_apart_from_config(default_space):
    c = check_idea(default_space, {"idea_name": "x", "priority": "high", "rationale": "why",
                                   "parent": "p1", "agent": "a", "source": "llm", "model": "m"})
    assert c.ok
    assert c.meta == {"idea_name": "x", "priority": "high", "rationale": "why", "parent": "p1",
                      "agent": "a", "source": "llm", "model": "m"}
    assert not set(c.meta) & set(c.config)
