import pytest

from orze.space import check_idea, fingerprint


def fp(space, idea):
    c = check_idea(space, idea)
    assert c.ok, c.errors
    return fingerprint(c.config)


def test_spellings_of_one_experiment_coincide(default_space):
    a = fp(default_space, {"learning_rate": "3e-4", "backbone": ["vjepa2", "siglip2"], "batch_size": "32"})
    b = fp(default_space, {"batch_size": 32, "backbone": ["siglip2", "vjepa2"], "learning_rate": 0.0003,
                           "fusion": "concat", "idea_name": "other", "priority": "low", "rationale": "r"})
    assert a == b


def test_defaults_spelled_out_coincide(default_space):
    assert fp(default_space, {}) == fp(default_space, {"pooling": "attention", "seed": 0})


@pytest.mark.parametrize("change", [
    {"pooling": "mean"}, {"learning_rate": 1e-3}, {"focal_gamma": 2.5}, {"seed": 1},
    {"backbone": ["vjepa2", "siglip2"]}, {"epochs": 20}, {"mixup_alpha": 0.2},
])
def test_any_dimension_change_changes_fingerprint(default_space, change):
    assert fp(default_space, {}) != fp(default_space, change)


def test_fingerprint_is_stable_and_long(default_space):
    f = fp(default_space, {})
    assert len(f) == 40 and int(f, 16) >= 0
    assert f == fp(default_space, {})
