"""Load any Hugging Face two-tower model (hub id, local or `s3://` folder, or a built-in) and embed with it.

Two families: `CLIPModel` and `VisionTextDualEncoderModel` (any vision encoder + any text encoder +
projection heads; `clippings.towers.compose` builds one). Built-ins need no download: `tiny`, a small CLIP
from a `CLIPConfig` with a byte-level tokenizer (every byte is a token, which suits OCR noise), and
`minilm`, the packaged all-MiniLM-L6-v2 text encoder composed with a small image tower
(`clippings.towers`); each is identical for a given seed. A saved model is a plain HF folder (safetensors,
config, tokenizer, image processor) plus `clippings.json`, so `transformers.AutoModel.from_pretrained` opens
it. How the text tower pools its tokens travels in the model's own config (`text_pooling`: "mean" for
sentence-transformers encoders, else the encoder's pooler output). Nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import CLIPModel, VisionTextDualEncoderModel

from clippings.builtins import BUILTINS, build_builtin
from clippings.errors import BadInput
from clippings.hf import quiet_hub
from clippings.image_paths import decode_image
from clippings.model_cache import local_copy
from clippings.model_meta import update_clippings_meta
from clippings.storage import filesystem, is_remote

MAX_TEXT_TOKENS = 128  # captions are truncated here at most: OCR captions of clippings are short
TWO_TOWER_CLASSES = (CLIPModel, VisionTextDualEncoderModel)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved `--model` value: kind is 'builtin', 'folder', 's3' or 'hub'; location is the path or id."""

    kind: str
    location: str


def resolve_model_spec(spec: str) -> ModelSpec:
    """Turn a `--model` value into (kind, location) before anything is loaded."""
    if spec in BUILTINS:
        return ModelSpec("builtin", spec)
    if spec.startswith("s3://"):
        return ModelSpec("s3", spec.rstrip("/"))
    if os.path.isdir(spec):
        return ModelSpec("folder", os.path.abspath(spec))
    parts = spec.split("/")
    if len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~")):
        return ModelSpec("hub", spec)
    raise BadInput(
        f"--model {spec!r}: not a built-in ({', '.join(BUILTINS)}), an existing folder, an s3:// folder or a hub id such as "
        "'openai/clip-vit-base-patch32'; check the value"
    )


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the state dict (sorted names, raw bytes): equal weights give equal fingerprints."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def save_model(model: torch.nn.Module, processor: Any, out: str, meta: dict | None = None) -> None:
    """Save as a plain HF folder (local or `s3://`), plus `clippings.json` fields in `meta`."""
    if is_remote(out):
        with tempfile.TemporaryDirectory() as tmp:
            save_model(model, processor, tmp, meta)
            fs, inner = filesystem(out)
            fs.put(tmp.rstrip("/") + "/", inner, recursive=True)
        return
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if meta:
        update_clippings_meta(out, **meta)


TwoTowerModel = CLIPModel | VisionTextDualEncoderModel


def image_features(model: TwoTowerModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected, unnormalised image embeddings: the vision encoder's pooled output through the projection.

    The same as `get_image_features` for CLIP. `model.config.vision_pooling == "flatten"` keeps the layout:
    the encoder's last feature map (channels × a few cells) is flattened instead of averaged (the built-in
    CNN: reprint identity is in where things are, which a global average discards).
    """
    out = model.vision_model(pixel_values=pixel_values)
    if getattr(model.config, "vision_pooling", None) == "flatten":
        return model.visual_projection(out.last_hidden_state.flatten(1))
    return model.visual_projection(out.pooler_output.flatten(1))


def text_features(model: TwoTowerModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Projected, unnormalised text embeddings, pooled the way the text encoder was trained.

    `model.config.text_pooling == "mean"`: the mean of the last hidden states over real tokens (how
    sentence-transformers models such as all-MiniLM-L6-v2 were trained; their BERT pooler was not).
    Otherwise the encoder's own pooled output (CLIP: the end-of-text token; BERT: the [CLS] pooler).
    """
    if text_pooling(model) == "mean":
        hidden = model.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    else:
        pooled = model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
    return model.text_projection(pooled)


def text_pooling(model: TwoTowerModel) -> str:
    """'mean' or 'pooler' (the default, and CLIP's only choice)."""
    return getattr(model.config, "text_pooling", None) or "pooler"


def embedding_dim(model: TwoTowerModel) -> int:
    return int(model.config.projection_dim)


def max_text_tokens(model: TwoTowerModel) -> int:
    """Token limit of captions: the text encoder's position limit, capped at MAX_TEXT_TOKENS."""
    return min(int(model.config.text_config.max_position_embeddings), MAX_TEXT_TOKENS)


@dataclass
class LoadedModel:
    """A two-tower model ready to embed: its processor, a display name and a weights fingerprint."""

    model: TwoTowerModel
    processor: Any
    name: str
    fingerprint: str
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    location: str | None = None

    @torch.no_grad()
    def embed_images(self, pixel_values: torch.Tensor) -> np.ndarray:
        """Unit-norm image embeddings (float32, (n, d)) of preprocessed pixels."""
        pixel_values = pixel_values.to(self.device, self.dtype)
        with _autocast(self.device, self.dtype):
            out = image_features(self.model, pixel_values)
        return _unit(out)

    @torch.no_grad()
    def embed_texts(self, captions: list[str]) -> np.ndarray:
        """Unit-norm text embeddings (float32, (n, d)) of raw captions (tokenised here)."""
        tokens = self.tokenize(captions)
        return self.embed_tokens(tokens["input_ids"], tokens["attention_mask"])

    @torch.no_grad()
    def embed_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        """Unit-norm text embeddings of already tokenised captions."""
        with _autocast(self.device, self.dtype):
            out = text_features(self.model, input_ids.to(self.device), attention_mask.to(self.device))
        return _unit(out)

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        return tokenize(self.processor, self.model, captions)

    def preprocess_images(self, images: list) -> torch.Tensor:
        return preprocess_images(self.processor, images)


def tokenize(processor, model: TwoTowerModel, captions: list[str | None]) -> dict[str, torch.Tensor]:
    """Pad to the batch's longest caption, truncate to `max_text_tokens`; a null caption is the empty one."""
    return processor.tokenizer(
        [c or "" for c in captions], padding=True, truncation=True, max_length=max_text_tokens(model),
        return_tensors="pt",
    )


def preprocess_images(processor, images: list) -> torch.Tensor:
    """Resize, crop and normalise images (PIL images or encoded bytes) to a (n, 3, H, W) float tensor."""
    pil = [decode_image(im) if isinstance(im, (bytes, bytearray)) else im for im in images]
    return processor.image_processor(images=pil, return_tensors="pt")["pixel_values"]


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy().astype(np.float32)


def _autocast(device: str, dtype: torch.dtype):
    if device.startswith("cuda") and dtype in (torch.float16, torch.bfloat16):
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


def _load_pretrained(path: str, spec: str, kind: str) -> tuple[TwoTowerModel, Any]:
    """AutoModel + AutoProcessor from a folder or hub id, checked to be a two-tower model.

    Composed folders with the EfficientNet-Lite encoder load because `clippings.towers` (imported through
    `clippings.builtins`) registers it with AutoModel."""
    from transformers import AutoModel, AutoProcessor

    try:
        with quiet_hub():
            model = AutoModel.from_pretrained(path)
            processor = AutoProcessor.from_pretrained(path)
    except OSError as e:
        if kind == "hub":
            raise BadInput(
                f"--model {spec!r}: could not load from the Hugging Face hub (offline or unknown id: "
                f"{str(e).splitlines()[0][:120]}); use --model tiny, --model minilm or a local model folder"
            ) from e
        raise BadInput(f"model folder {spec}: not a loadable model ({str(e).splitlines()[0][:120]}); "
                       "re-run the training that wrote it") from e
    except Exception as e:  # corrupt weights, unknown architecture
        raise BadInput(f"model {spec}: not a loadable two-tower model ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120]}); give a CLIP or VisionTextDualEncoder model") from e
    if not isinstance(model, TWO_TOWER_CLASSES):
        raise BadInput(f"model {spec}: a {type(model).__name__}, not a two-tower model (CLIPModel or "
                       "VisionTextDualEncoderModel); build one from two encoders with 'clippings compose'")
    return model, processor


def load_model(spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a two-tower model and processor from a `--model` value, in eval mode on `device`.

    Hub ids work for users who are online; offline, the error says so and suggests a built-in or a local
    folder. A folder that is not a two-tower model folder is a one-line BadInput.
    """
    resolved = resolve_model_spec(spec)
    if resolved.kind == "builtin":
        model, processor = build_builtin(resolved.location)
        name, location = resolved.location, None
    else:
        path = local_copy(resolved.location) if resolved.kind == "s3" else resolved.location
        if resolved.kind == "folder" and not os.path.isfile(os.path.join(path, "config.json")):
            raise BadInput(
                f"model folder {path}: no config.json; give a folder written by 'clippings pretrain/train/compose'"
            )
        model, processor = _load_pretrained(path, spec, resolved.kind)
        name = resolved.location if resolved.kind != "folder" else os.path.basename(path.rstrip("/"))
        location = resolved.location
    fingerprint = weights_fingerprint(model)
    model.to(device=device, dtype=dtype if device.startswith("cuda") else torch.float32)
    model.eval()
    return LoadedModel(model, processor, name, fingerprint, device, dtype, location)
