from orze.daemon.heal import heal_patch
from orze.space import check_idea


def canon(space, **kw):
    c = check_idea(space, kw)
    assert c.ok, c.errors
    return c.config


def test_oom_halves_batch_within_choices(default_space):
    patch, why = heal_patch(default_space, canon(default_space, batch_size=128), "oom")
    assert patch == {"batch_size": 64} and "128 → 64" in why
    assert heal_patch(default_space, canon(default_space, batch_size=16), "oom") is None


def test_nan_lowers_lr_and_clips(default_space):
    patch, _ = heal_patch(default_space, canon(default_space, learning_rate=3e-3, grad_clip=1.0), "nan_loss")
    assert abs(patch["learning_rate"] - 1e-3) < 1e-12 and patch["grad_clip"] == 0.5
    assert check_idea(default_space, {**canon(default_space), **patch}).ok
    assert heal_patch(default_space, canon(default_space, learning_rate=2e-5), "nan_loss") is None


def test_no_heal_for_other_classes(default_space):
    for cls in ("missing_features", "shape_mismatch", "invalid_config", "crash", "timeout"):
        assert heal_patch(default_space, canon(default_space), cls) is None
