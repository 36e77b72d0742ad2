from pathlib import Path

import numpy as np
import pytest
import torch

from orze.features.backbones import (REGISTRY, BackboneError, Preprocessing, get_backbone,
                                     IMAGENET_MEAN, IMAGENET_STD)

from orze.space import load_space

from .conftest import SIDE


def test_registry_covers_the_space_backbones():
    space = load_space(Path(__file__).parents[2] / "configs" / "space.yaml")
    assert set(space.dimensions["backbone"].choices) == set(REGISTRY)


def test_unknown_backbone_names_the_known_ones():
    with pytest.raises(BackboneError, match="known: vjepa2, dinov2_b"):
        get_backbone("resnet")


def test_shortest_edge_resize_then_centre_crop_keeps_the_centre():
    pre = Preprocessing(size=8, crop=8, mean=(0, 0, 0), std=(1, 1, 1))
    frames = torch.zeros(1, 8, 32, 3, dtype=torch.uint8)
    frames[:, :, 12:20] = 255  # a bright vertical band in the middle quarter
    out = pre.apply(frames)
    assert out.shape == (1, 3, 8, 8)
    # resized to 8×32, the band covers columns 12..19, which the centre crop (12..19) keeps
    assert torch.allclose(out, torch.ones_like(out), atol=1e-4)


def test_squash_resize_and_normalisation():
    pre = Preprocessing(size=16, crop=None, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    frames = torch.full((2, 30, 50, 3), 255, dtype=torch.uint8)
    out = pre.apply(frames)
    assert out.shape == (2, 3, 16, 16)
    expect = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(out[0, :, 5, 5], torch.tensor(expect), atol=1e-4)


def test_with_side_keeps_the_resize_to_crop_ratio():
    pre = Preprocessing(size=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    small = pre.with_side(32)
    assert (small.size, small.crop) == (37, 32)
    assert Preprocessing(224, None, IMAGENET_MEAN, IMAGENET_STD).with_side(32).side == 32


def test_rejects_frames_that_are_not_rgb():
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        REGISTRY["dinov2_b"].preprocessing.apply(torch.zeros(2, 8, 8, dtype=torch.uint8))


@pytest.mark.parametrize("name", list(REGISTRY))
def test_tiny_model_of_each_family_embeds_one_vector_per_step(name):
    b = REGISTRY[name]
    model = b.tiny_model(SIDE)
    assert type(model).__name__ == b.model_class
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    steps = 3
    frames = torch.randint(0, 255, (2, b.input_frames(steps), 40, 48, 3), dtype=torch.uint8)
    pre = b.preprocessing.with_side(SIDE)
    pixels = torch.stack([pre.apply(f) for f in frames])
    with torch.inference_mode():
        out = b.embed(model, pixels)
    assert out.shape[:2] == (2, steps) and out.shape[2] > 0
    assert torch.isfinite(out).all()
    # different clips give different features (the model really ran on the pixels)
    assert not torch.allclose(out[0], out[1])


def test_vjepa2_needs_whole_tubelets():
    b = REGISTRY["vjepa2"]
    with pytest.raises(ValueError, match="multiple of 2"):
        b.embed(b.tiny_model(SIDE), torch.zeros(1, 3, 3, SIDE, SIDE))


def test_loading_a_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(BackboneError, match="cannot load"):
        REGISTRY["convnext"].load(str(tmp_path / "nothing-here"))


def _scene(h=180, w=320):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx / w * 255, yy / h * 255, 128 + 100 * np.sin(xx / 23) * np.cos(yy / 17)], -1)
    return img.clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ["dinov2_b", "convnext", "siglip2"])
def test_torch_preprocessing_matches_the_hf_processor(name):
    """Our torch pipeline against transformers' PIL processor set up as the checkpoint's
    preprocessor_config.json (DINOv3/V-JEPA 2 processors need torchvision, so they are not compared)."""
    import transformers

    cfg = {
        "dinov2_b": ("BitImageProcessorPil", dict(size={"shortest_edge": 256}, do_center_crop=True,
                     crop_size={"height": 224, "width": 224}, resample=3,
                     image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))),
        "convnext": ("ConvNextImageProcessorPil", dict(size={"shortest_edge": 224}, crop_pct=0.875,
                     resample=3, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD))),
        "siglip2": ("SiglipImageProcessorPil", dict(size={"height": 384, "width": 384}, resample=2,
                    image_mean=[0.5] * 3, image_std=[0.5] * 3)),
    }[name]
    proc = getattr(transformers, cfg[0])(**cfg[1])
    img = _scene()
    ref = proc(images=img, return_tensors="pt")["pixel_values"][0]
    mine = REGISTRY[name].preprocessing.apply(torch.from_numpy(img)[None])[0]
    assert mine.shape == ref.shape
    diff = (mine - ref).abs()
    assert float(diff.mean()) < 0.01 and float(diff.max()) < 0.05  # ≈ 1 grey level of 255


def test_siglip2_vision_tower_loads_from_a_full_siglip_checkpoint(tmp_path):
    """The Hub's SigLIP 2 FixRes checkpoints are whole SiglipModels (text + vision)."""
    import transformers

    vision = REGISTRY["siglip2"].tiny_config(SIDE).to_dict()
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=64)
    full = transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))
    full.save_pretrained(tmp_path)
    b = REGISTRY["siglip2"]
    assert b.load_config(str(tmp_path)).image_size == SIDE
    tower = b.load(str(tmp_path))
    assert type(tower).__name__ == "SiglipVisionModel"
    def patch_weight(model):
        return next(v for k, v in model.state_dict().items()
                    if k.endswith("embeddings.patch_embedding.weight") and "text" not in k)

    assert torch.equal(patch_weight(tower), patch_weight(full))  # the trained tower, not a fresh one


def test_vjepa2_step_t_comes_from_tubelet_t():
    """Tokens are grouped time-major: changing the last 2 frames moves the last step most."""
    b = REGISTRY["vjepa2"]
    model = b.tiny_model(SIDE)
    gen = torch.Generator().manual_seed(1)
    pixels = torch.randn(1, 8, 3, SIDE, SIDE, generator=gen)
    changed = pixels.clone()
    changed[:, 6:] = torch.randn(1, 2, 3, SIDE, SIDE, generator=gen)
    with torch.inference_mode():
        delta = (b.embed(model, pixels) - b.embed(model, changed))[0].norm(dim=-1)
    assert delta.argmax().item() == 3 and delta[3] > 10 * delta[:3].max()
