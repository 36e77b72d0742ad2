"""The demo's closing lines are computed from the leaderboard: best per backbone, and whether the
temporal video backbone leads the image ones."""

from orze.demo.story import best_per_backbone, campaign_story, temporal_backbone


def _row(i, backbone, metric, status="done"):
    return {"id": f"r{i}", "status": status, "metric": metric, "config": {"backbone": backbone}}


def test_temporal_backbone_is_read_from_the_generator():
    assert temporal_backbone() == "vjepa2"


def test_best_per_backbone_counts_fused_runs_for_each_member():
    rows = [_row(1, "vjepa2", 0.9), _row(2, ["vjepa2", "siglip2"], 0.7), _row(3, "siglip2", 0.8),
            _row(4, "siglip2", None, "failed"), _row(5, "convnext", float("nan"))]
    best = best_per_backbone(rows)
    assert list(best) == ["vjepa2", "siglip2"]
    assert best["vjepa2"] == {"metric": 0.9, "id": "r1", "runs": 2}
    assert best["siglip2"]["runs"] == 2 and best["siglip2"]["id"] == "r3"


def test_story_follows_the_leaderboard():
    found = campaign_story([_row(1, "vjepa2", 0.93), _row(2, "dinov3_l", 0.71)])
    assert found[0] == "best val_ap per backbone: vjepa2 0.930 (1 run), dinov3_l 0.710 (1 run)"
    assert "found the planted structure" in found[1] and "by 0.220" in found[1] and "r1" in found[1]
    missed = campaign_story([_row(1, "vjepa2", 0.6), _row(2, "dinov3_l", 0.71)])
    assert "has not found the planted structure yet: dinov3_l leads" in missed[1]
    absent = campaign_story([_row(2, "dinov3_l", 0.71)], metric_name="val_auc")
    assert absent[0].startswith("best val_auc per backbone") and "never finished a vjepa2 run" in absent[1]
    assert "No run finished" in campaign_story([_row(1, "vjepa2", None, "failed")])[0]


def test_the_shipped_demo_subspace_fits_the_shipped_space(default_space):
    """The demo's agents sample inside configs/space.yaml (a subspace value the space refuses
    would stop the demo's agent at its first cycle)."""
    from pathlib import Path

    import yaml

    from orze.agents.base import restrict_space

    project = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "orze.yaml").read_text())
    subspaces = [a["options"]["subspace"] for a in project["agents"] if "subspace" in a.get("options", {})]
    assert subspaces
    for sub in subspaces:
        narrowed = restrict_space(default_space, sub)
        assert narrowed.dimensions["learning_rate"].low >= 1e-3   # the demo's short schedules train
