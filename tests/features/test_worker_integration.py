"""Videos → `extract` → `check` → the real worker trains on the store (single and fused backbones).

Needs the lead's worker and `orze init` (orze.worker.train, orze.cli.init); skipped where they are
not present (the features branch before it is merged with main).
"""

import json

import numpy as np
import pytest
import yaml

from orze.features.backbones import REGISTRY
from orze.features.check import check_features
from orze.features.extract import ExtractSettings, extract
from orze.features.store import Clip, write_clips
from orze.layout import Layout

from .conftest import SIDE, write_video

train = pytest.importorskip("orze.worker.train")
init = pytest.importorskip("orze.cli.init")


def test_extracted_features_train_in_the_worker(tmp_path):
    from orze.space import check_idea, load_space

    root = tmp_path / "research"
    init.init_directory(root)
    layout = Layout.at(root)
    space = yaml.safe_load(layout.space_config.read_text())
    dims = space["dimensions"]
    # small and fast: the transformer baseline encoder, one layer, two epochs
    dims["temporal_encoder"]["choices"] = list(dims["temporal_encoder"]["choices"]) + ["transformer"]
    dims["d_model"]["default"], dims["num_layers"]["default"] = 16, 1
    dims["epochs"]["choices"] = sorted(set(dims["epochs"]["choices"]) | {2})
    layout.space_config.write_text(yaml.safe_dump(space, sort_keys=False))

    videos, clips = tmp_path / "videos", []
    splits = ["train"] * 4 + ["val", "test"]
    for i in range(24):
        label = i % 2
        write_video(videos / f"v{i:02d}.mp4", n=20, step=9 if label else 2)
        clips.append(Clip(f"v{i:02d}", label, splits[(i // 2) % 6]))
    write_clips(tmp_path / "labels.csv", clips)
    for name in ("dinov2_b", "vjepa2"):
        b = REGISTRY[name]
        report = extract(layout, b, videos, clips, ExtractSettings(frames=8, device="cpu", image_size=SIDE),
                         model=b.tiny_model(SIDE), progress=False, labels_source=tmp_path / "labels.csv")
        assert report.total == 24
    assert check_features(layout).ok

    for i, backbone in enumerate(["dinov2_b", ["dinov2_b", "vjepa2"]]):
        idea = check_idea(load_space(layout.space_config),
                          {"backbone": backbone, "temporal_encoder": "transformer", "seq_len": 8,
                           "epochs": 2})
        assert idea.ok, idea.errors
        run_dir = layout.run_dir(f"integration{i}")
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(idea.config))
        metrics = train.run_experiment(run_dir, layout, "cpu")
        assert np.isfinite(metrics["val_ap"])
        effective = json.loads((run_dir / "effective_config.json").read_text())
        assert [f["backbone"] for f in effective["features"]] == sorted(np.atleast_1d(backbone).tolist())
