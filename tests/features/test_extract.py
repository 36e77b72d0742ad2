import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from orze.cli.app import app
from orze.features.backbones import REGISTRY
from orze.features.extract import ExtractError, ExtractSettings, extract, partial_dir
from orze.features.store import Clip, open_store, read_clips, write_clips

from .conftest import SIDE, said

runner = CliRunner()


def _cli(layout, videos, labels, tiny, name, *extra):
    return runner.invoke(app, ["features", "extract", "--root", str(layout.root), "--backbone", name,
                               "--videos", str(videos), "--labels", str(labels),
                               "--model-id", str(tiny), "--image-size", str(SIDE), "--frames", "4",
                               "--batch-size", "2", "--device", "cpu", "--quiet", *extra])


@pytest.mark.parametrize("name", list(REGISTRY))
def test_cli_extracts_every_family_into_a_readable_store(project, tiny_dirs, tmp_path, name):
    layout, videos, clips = project
    res = _cli(layout, videos, tmp_path / "labels.csv", tiny_dirs[name], name)
    assert res.exit_code == 0, res.output
    store = open_store(layout.backbone_dir(name))
    assert store.ids == ["c1", "c2", "c3"]  # labels order; the corrupt 'bad' clip is skipped
    assert store.array.shape[:2] == (3, 4) and store.array.dtype == np.float16
    assert np.isfinite(store.array).all()
    assert not np.allclose(store.array[0], store.array[2])
    meta = store.meta
    assert meta["model_id"] == str(tiny_dirs[name]) and meta["model_class"] == REGISTRY[name].model_class
    assert meta["fps"] == 5.0 and meta["frames"] == 4 and meta["align"] == "end"
    assert meta["input_frames"] == 4 * REGISTRY[name].tubelet
    assert meta["preprocessing"]["crop" if REGISTRY[name].preprocessing.crop else "size"] == SIDE
    assert [s["clip_id"] for s in meta["skipped"]] == ["bad"]
    assert said(res, "bad") and said(res, "skipped")
    # clips.csv gets the extracted clips only, so the worker never asks for a missing row
    assert [c.clip_id for c in read_clips(layout.clips_csv)] == ["c1", "c2", "c3"]
    assert not partial_dir(layout.backbone_dir(name)).exists()


def test_the_store_matches_a_direct_forward_pass(project, tiny_dirs):
    """The features stored are the model's output for the sampled, preprocessed frames."""
    from orze.features.video import sample_video

    layout, videos, clips = project
    b = REGISTRY["dinov2_b"]
    model = b.load(str(tiny_dirs["dinov2_b"]))
    settings = ExtractSettings(frames=3, device="cpu", image_size=SIDE)
    extract(layout, b, videos, clips[:1], settings, model=model, progress=False)
    s = sample_video(videos / "c1.mp4", 5.0, 3, "end")
    pixels = b.preprocessing.with_side(SIDE).apply(torch.from_numpy(s.frames))[None]
    with torch.inference_mode():
        want = b.embed(model, pixels)[0].numpy()
    got = open_store(layout.backbone_dir("dinov2_b")).array[0].astype(np.float32)
    assert np.allclose(got, want, atol=2e-2, rtol=1e-2)


class _Crashes(torch.nn.Module):
    """Wraps a model; raises on the forward pass after `ok` successful ones (a killed run)."""

    def __init__(self, inner, ok):
        super().__init__()
        self.inner, self.ok, self.calls = inner, ok, 0
        self.config = inner.config

    def forward(self, **kw):
        self.calls += 1
        if self.calls > self.ok:
            raise RuntimeError("simulated crash")
        return self.inner(**kw)


def test_resume_skips_clips_already_done(project, tiny_dirs):
    layout, videos, clips = project
    good = clips[:3]
    b = REGISTRY["dinov2_b"]
    model = b.load(str(tiny_dirs["dinov2_b"]))
    settings = ExtractSettings(frames=4, device="cpu", image_size=SIDE, batch_size=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract(layout, b, videos, good, settings, model=_Crashes(model, ok=1), progress=False)
    store_dir = layout.backbone_dir("dinov2_b")
    assert not (store_dir / "meta.json").exists()  # nothing half-written is mistaken for a store
    assert sorted(p.name for p in partial_dir(store_dir).glob("*.npz")) == ["c1.npz"]

    counting = _Crashes(model, ok=10**6)
    report = extract(layout, b, videos, good, settings, model=counting, progress=False)
    assert (report.extracted, report.reused, report.total) == (2, 0, 3)
    assert counting.calls == 2  # c1 was not run again
    store = open_store(store_dir)
    assert store.ids == ["c1", "c2", "c3"]

    again = _Crashes(model, ok=10**6)
    report = extract(layout, b, videos, good, settings, model=again, progress=False)
    assert (report.extracted, report.reused, again.calls) == (0, 3, 0)
    assert np.array_equal(open_store(store_dir).array, store.array)


def test_new_clips_are_added_to_a_finished_store(project, tiny_dirs):
    layout, videos, clips = project
    b = REGISTRY["convnext"]
    model = b.load(str(tiny_dirs["convnext"]))
    settings = ExtractSettings(frames=2, device="cpu", image_size=SIDE)
    extract(layout, b, videos, clips[:1], settings, model=model, progress=False)
    report = extract(layout, b, videos, clips[:3], settings, model=model, progress=False)
    assert (report.extracted, report.reused) == (2, 1)
    assert open_store(layout.backbone_dir("convnext")).ids == ["c1", "c2", "c3"]
    assert [c.clip_id for c in read_clips(layout.clips_csv)] == ["c1", "c2", "c3"]


def test_other_settings_need_restart(project, tiny_dirs):
    layout, videos, clips = project
    b = REGISTRY["dinov2_b"]
    model = b.load(str(tiny_dirs["dinov2_b"]))
    extract(layout, b, videos, clips[:1], ExtractSettings(frames=2, device="cpu", image_size=SIDE),
            model=model, progress=False)
    other = ExtractSettings(frames=3, device="cpu", image_size=SIDE)
    with pytest.raises(ExtractError, match=r"frames: 2 now 3.*--restart"):
        extract(layout, b, videos, clips[:1], other, model=model, progress=False)
    restarted = ExtractSettings(frames=3, device="cpu", image_size=SIDE, restart=True)
    report = extract(layout, b, videos, clips[:1], restarted, model=model, progress=False)
    assert report.extracted == 1 and open_store(layout.backbone_dir("dinov2_b")).frames == 3


def test_missing_videos_are_reported_not_fatal(project, tiny_dirs, tmp_path):
    layout, videos, clips = project
    write_clips(tmp_path / "more.csv", clips[:3] + [Clip("ghost", 1, "val")])
    res = _cli(layout, videos, tmp_path / "more.csv", tiny_dirs["siglip2"], "siglip2")
    assert res.exit_code == 0, res.output
    assert said(res, "ghost") and said(res, "no video named ghost")
    assert open_store(layout.backbone_dir("siglip2")).ids == ["c1", "c2", "c3"]


def test_cli_errors_name_the_option_or_file(project, tiny_dirs, tmp_path):
    layout, videos, clips = project
    res = _cli(layout, videos, tmp_path / "labels.csv", tiny_dirs["dinov2_b"], "dinov2_b", "--align", "middle")
    assert res.exit_code == 2 and said(res, "--align")
    res = _cli(layout, videos, tmp_path / "labels.csv", tiny_dirs["dinov2_b"], "resnet")
    assert res.exit_code == 2 and said(res, "unknown backbone 'resnet'")
    # siglip's position embeddings fix its input side
    res = _cli(layout, videos, tmp_path / "labels.csv", tiny_dirs["siglip2"], "siglip2", "--image-size", "48")
    assert res.exit_code == 2 and said(res, "only takes 32")
    # a label that disagrees with features/clips.csv
    write_clips(layout.clips_csv, [Clip("c1", 1, "train")])
    res = _cli(layout, videos, tmp_path / "labels.csv", tiny_dirs["dinov2_b"], "dinov2_b")
    assert res.exit_code == 2 and said(res, "clip 'c1' has a different label")
    assert said(res, "clips.csv")


def test_cli_without_labels_uses_clips_csv_and_needs_it(project, tiny_dirs):
    layout, videos, clips = project
    res = runner.invoke(app, ["features", "extract", "--root", str(layout.root), "-b", "dinov2_b",
                              "--videos", str(videos), "--quiet"])
    assert res.exit_code == 2 and said(res, "clips.csv: not found; pass --labels")


def test_subprocess_entry_point(project, tiny_dirs, tmp_path):
    """`python -m orze features extract` in a fresh process (the way users run it)."""
    layout, videos, clips = project
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [sys.executable, "-m", "orze", "features", "extract", "--root", str(layout.root),
           "-b", "convnext", "--videos", str(videos), "--labels", str(tmp_path / "labels.csv"),
           "--model-id", str(tiny_dirs["convnext"]), "--image-size", str(SIDE), "--frames", "2",
           "--device", "cpu"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "3 clips" in out.stdout
    meta = json.loads((layout.backbone_dir("convnext") / "meta.json").read_text())
    assert meta["num_clips"] == 3


@pytest.mark.parametrize("name", ["siglip2", "vjepa2"])
def test_fixed_side_models_take_their_side_from_the_checkpoint(project, tiny_dirs, name):
    """Without --image-size, SigLIP / V-JEPA 2 inputs follow the loaded config (32 here, not 384/256)."""
    layout, videos, clips = project
    b = REGISTRY[name]
    model = b.load(str(tiny_dirs[name]))
    report = extract(layout, b, videos, clips[:1], ExtractSettings(frames=2, device="cpu"),
                     model=model, progress=False)
    assert report.total == 1
    pre = open_store(layout.backbone_dir(name)).meta["preprocessing"]
    assert (pre["crop"] or pre["size"]) == SIDE


def test_a_finished_run_does_not_load_the_weights_again(project, tiny_dirs, monkeypatch):
    from orze.features.backbones import Backbone

    layout, videos, clips = project
    b = REGISTRY["dinov2_b"]
    settings = ExtractSettings(frames=2, device="cpu", image_size=SIDE,
                               model_id=str(tiny_dirs["dinov2_b"]))
    first = extract(layout, b, videos, clips[:3], settings, progress=False)  # loads from the dir
    assert first.extracted == 3

    def no_load(self, model_id=None):
        raise AssertionError("weights loaded although every clip was done")

    monkeypatch.setattr(Backbone, "load", no_load)
    again = extract(layout, b, videos, clips[:3], settings, progress=False)
    assert (again.extracted, again.reused) == (0, 3)


def test_meta_names_the_model_that_really_ran(project, tiny_dirs):
    layout, videos, clips = project
    b = REGISTRY["convnext"]
    settings = ExtractSettings(frames=2, device="cpu", image_size=SIDE)
    extract(layout, b, videos, clips[:1], settings, model=b.tiny_model(SIDE), progress=False)
    # a random model passed in is not claimed to be the Hub checkpoint
    assert open_store(layout.backbone_dir("convnext")).meta["model_id"] == "in-memory ConvNextModel"
    loaded = b.load(str(tiny_dirs["convnext"]))
    extract(layout, b, videos, clips[:1], ExtractSettings(frames=2, device="cpu", image_size=SIDE,
                                                          restart=True), model=loaded, progress=False)
    assert open_store(layout.backbone_dir("convnext")).meta["model_id"] == str(tiny_dirs["convnext"])
