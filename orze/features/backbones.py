"""The registry of frozen backbones that `orze features extract` can run.

Each entry maps an Orze backbone name (the values of the `backbone` dimension in configs/space.yaml)
to a Hugging Face `transformers` checkpoint and model class, the preprocessing its own image/video
processor applies (re-implemented here in torch: resize, centre crop, rescale, normalise — no
torchvision, whose PyPI wheels break against our torch), how one embedding per time step is read
from the model's outputs, and a tiny randomly initialised configuration of the same class so that
tests exercise the real model code without downloading weights.

Contract of `Backbone.embed(model, pixels)`:
  frame models  pixels (B, T, 3, S, S)                 -> (B, T, D)   one pooled vector per frame
  video models  pixels (B, T * tubelet, 3, S, S)       -> (B, T, D)   one vector per temporal token
                (the spatial tokens of each tubelet are averaged)

Real weights are loaded with `from_pretrained(model_id)`; see docs/features.md for the model ids,
their sizes and which ones are gated on the Hub.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class BackboneError(ValueError):
    """An unknown backbone name, or a model that cannot be loaded; the message says what is allowed."""


@dataclass(frozen=True)
class Preprocessing:
    """Resize → (centre crop) → rescale to [0, 1] → normalise, as the model's HF processor does.

    crop None: resize both sides to `size` (aspect ratio not kept; SigLIP, DINOv3).
    crop int:  resize the shortest edge to `size`, then take the centre `crop` × `crop` square.
    """

    size: int
    crop: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"

    @property
    def side(self) -> int:
        return self.crop if self.crop is not None else self.size

    def with_side(self, side: int) -> "Preprocessing":
        """The same recipe at another output side (keeps the resize/crop ratio)."""
        if self.crop is None:
            return replace(self, size=side)
        return replace(self, size=int(round(side * self.size / self.crop)), crop=side)

    def as_meta(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def apply(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (T, H, W, 3) RGB frames -> float32 (T, 3, side, side) model input."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected (T, H, W, 3) RGB frames, got {tuple(frames.shape)}")
        x = frames.permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        if self.crop is None:
            out_hw = (self.size, self.size)
        else:
            scale = self.size / min(h, w)
            # max(…, size) guards against rounding the shortest edge below the crop
            out_hw = (max(self.size, int(round(h * scale))), max(self.size, int(round(w * scale))))
        if (h, w) != out_hw:
            x = F.interpolate(x, size=out_hw, mode=self.interpolation, antialias=True,
                              align_corners=False)
            x = x.clamp_(0.0, 255.0)  # bicubic overshoots; PIL-based processors clip here too
        if self.crop is not None:
            top = (x.shape[-2] - self.crop) // 2
            left = (x.shape[-1] - self.crop) // 2
            x = x[..., top:top + self.crop, left:left + self.crop]
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1) * 255.0
        return ((x - mean) / std).contiguous()


def _frame_pooled(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    b, t = pixels.shape[:2]
    out = model(pixel_values=pixels.flatten(0, 1)).pooler_output
    return out.reshape(b, t, -1)


def _vjepa2_tokens(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    tubelet = int(model.config.tubelet_size)
    b, f = pixels.shape[:2]
    if f % tubelet:
        raise ValueError(f"V-JEPA 2 needs a multiple of {tubelet} frames, got {f}")
    tokens = model.get_vision_features(pixel_values_videos=pixels)  # (B, f/tubelet * h * w, D)
    # The 3-D patch embedding flattens (time, height, width) time-major, so each consecutive
    # block of h*w tokens is one tubelet; average its spatial tokens to one vector per step.
    return tokens.reshape(b, f // tubelet, -1, tokens.shape[-1]).mean(dim=2)


@dataclass(frozen=True)
class Backbone:
    name: str
    model_id: str
    model_class: str  # a class exported by `transformers`
    kind: Literal["frame", "video"]
    dim: int  # embedding width of the real checkpoint (documentation; the store records the actual)
    preprocessing: Preprocessing
    tiny_config: Callable[[int], Any] = field(repr=False)  # image side -> a tiny config of the class
    embed_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor] = field(repr=False,
                                                                           default=_frame_pooled)
    tubelet: int = 1  # input frames per output step (video models)
    gated: bool = False  # the Hub requires accepting a licence before download
    note: str = ""

    def model_cls(self) -> type:
        import transformers

        cls = getattr(transformers, self.model_class, None)
        if cls is None:
            raise BackboneError(
                f"backbone '{self.name}': transformers {transformers.__version__} has no "
                f"{self.model_class}; upgrade transformers (pip install -U 'orze[features]')")
        return cls

    def load(self, model_id: str | None = None) -> torch.nn.Module:
        """The pretrained model (Hub id or local directory), frozen and in eval mode."""
        source = model_id or self.model_id
        try:
            model = self.model_cls().from_pretrained(source)
        except (OSError, ValueError) as e:
            gated = (" It is gated: accept its licence on huggingface.co and set HF_TOKEN."
                     if self.gated and model_id is None else "")
            raise BackboneError(f"backbone '{self.name}': cannot load '{source}': {e}{gated}") from None
        return freeze(model)

    def load_config(self, model_id: str | None = None) -> Any:
        """The checkpoint's config alone (a small download), to plan work before loading weights."""
        source = model_id or self.model_id
        try:
            return self.model_cls().config_class.from_pretrained(source)
        except (OSError, ValueError) as e:
            gated = (" It is gated: accept its licence on huggingface.co and set HF_TOKEN."
                     if self.gated and model_id is None else "")
            raise BackboneError(f"backbone '{self.name}': cannot load '{source}': {e}{gated}") from None

    def tiny_model(self, side: int = 32, seed: int = 0) -> torch.nn.Module:
        """A randomly initialised model of the same class, small enough for tests (no download)."""
        torch.manual_seed(seed)
        return freeze(self.model_cls()(self.tiny_config(side)))

    def embed(self, model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed_fn(model, pixels)

    def input_frames(self, steps: int) -> int:
        return steps * self.tubelet

    def as_meta(self, model_id: str | None = None) -> dict[str, Any]:
        return {"backbone": self.name, "model_id": model_id or self.model_id,
                "model_class": self.model_class, "kind": self.kind, "tubelet": self.tubelet}


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# --- tiny configurations (tests): same classes, a few hundred thousand parameters ---------------

def _tiny_vit(cls_name: str, **extra: Any) -> Callable[[int], Any]:
    def make(side: int) -> Any:
        import transformers

        return getattr(transformers, cls_name)(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=side,
            patch_size=8, **extra)
    return make


def _tiny_dinov3(side: int) -> Any:
    from transformers import DINOv3ViTConfig

    return DINOv3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, image_size=side, patch_size=8,
                           num_register_tokens=2)


def _tiny_siglip(side: int) -> Any:
    from transformers import SiglipVisionConfig

    return SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, image_size=side, patch_size=8)


def _tiny_convnext(side: int) -> Any:
    from transformers import ConvNextConfig

    return ConvNextConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], image_size=side)


def _tiny_vjepa2(side: int) -> Any:
    from transformers import VJEPA2Config

    return VJEPA2Config(crop_size=side, patch_size=8, frames_per_clip=8, tubelet_size=2,
                        hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
                        pred_hidden_size=24, pred_num_hidden_layers=1, pred_num_attention_heads=2,
                        num_pooler_layers=1)


REGISTRY: dict[str, Backbone] = {b.name: b for b in [
    Backbone(
        name="vjepa2", model_id="facebook/vjepa2-vitl-fpc64-256", model_class="VJEPA2Model",
        kind="video", dim=1024, tubelet=2,
        preprocessing=Preprocessing(size=292, crop=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    interpolation="bilinear"),
        tiny_config=_tiny_vjepa2, embed_fn=_vjepa2_tokens,
        note="V-JEPA 2 ViT-L video encoder (predictor unused); frames sampled at 2x fps so each "
             "2-frame tubelet is one step at the configured fps"),
    Backbone(
        name="dinov2_b", model_id="facebook/dinov2-base", model_class="Dinov2Model",
        kind="frame", dim=768,
        preprocessing=Preprocessing(size=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    interpolation="bicubic"),
        tiny_config=_tiny_vit("Dinov2Config"), note="DINOv2 ViT-B/14, CLS token after the final norm"),
    Backbone(
        name="dinov3_b", model_id="facebook/dinov3-vitb16-pretrain-lvd1689m",
        model_class="DINOv3ViTModel", kind="frame", dim=768, gated=True,
        preprocessing=Preprocessing(size=224, crop=None, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        tiny_config=_tiny_dinov3, note="DINOv3 ViT-B/16 (LVD-1689M), CLS token after the final norm"),
    Backbone(
        name="dinov3_l", model_id="facebook/dinov3-vitl16-pretrain-lvd1689m",
        model_class="DINOv3ViTModel", kind="frame", dim=1024, gated=True,
        preprocessing=Preprocessing(size=224, crop=None, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        tiny_config=_tiny_dinov3, note="DINOv3 ViT-L/16 (LVD-1689M), CLS token after the final norm"),
    Backbone(
        name="siglip2", model_id="google/siglip2-so400m-patch14-384",
        model_class="SiglipVisionModel", kind="frame", dim=1152,
        preprocessing=Preprocessing(size=384, crop=None, mean=HALF, std=HALF),
        tiny_config=_tiny_siglip,
        note="SigLIP 2 So400m/14 at 384 (FixRes); its checkpoints use the SigLIP architecture "
             "(model_type 'siglip'), so the vision tower loads as SiglipVisionModel; "
             "attention-pooled (MAP) output"),
    Backbone(
        name="convnext", model_id="facebook/convnext-base-224-22k", model_class="ConvNextModel",
        kind="frame", dim=1024,
        preprocessing=Preprocessing(size=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                    interpolation="bicubic"),
        tiny_config=_tiny_convnext, note="ConvNeXt-B ImageNet-22k, global average pool + layer norm"),
]}


def get_backbone(name: str) -> Backbone:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BackboneError(
            f"unknown backbone '{name}'; known: {', '.join(REGISTRY)}") from None


def config_side(cfg: Any) -> int | None:
    """The input side a model config was built for, when it fixes one."""
    for key in ("crop_size", "image_size"):
        v = getattr(cfg, key, None)
        if isinstance(v, int):
            return v
        if isinstance(v, (list, tuple)) and v and all(isinstance(s, int) for s in v):
            return int(v[0])
    return None


def needs_exact_side(backbone: Backbone) -> bool:
    """Models whose positional encoding is fixed to their configured input side."""
    return backbone.model_class in ("SiglipVisionModel", "VJEPA2Model")

