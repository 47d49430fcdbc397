"""Load any Hugging Face CLIP (hub id, local or `s3://` folder, or the offline `tiny`) and embed with it.

`tiny` is a small CLIP built from a `CLIPConfig` with a byte-level tokenizer that needs no download and no
training data (every byte is a token, which suits OCR noise), identical for a given seed. A saved model is a
plain HF folder (safetensors, config, tokenizer, image processor) plus `clippings.json`, so
`transformers.CLIPModel.from_pretrained` opens it. Nothing here imports Ray.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from clippings.archive import filesystem, is_remote
from clippings.errors import BadInput
from clippings.model_meta import update_clippings_meta

TINY = "tiny"
TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 32  # one patch per image: see build_tiny
TINY_MAX_TEXT = 128


@dataclass(frozen=True)
class ModelSpec:
    """A resolved `--model` value: kind is 'tiny', 'folder', 's3' or 'hub'; location is the path or id."""

    kind: str
    location: str


def resolve_model_spec(spec: str) -> ModelSpec:
    """Turn a `--model` value into (kind, location) before anything is loaded."""
    if spec == TINY:
        return ModelSpec("tiny", TINY)
    if spec.startswith("s3://"):
        return ModelSpec("s3", spec.rstrip("/"))
    if os.path.isdir(spec):
        return ModelSpec("folder", os.path.abspath(spec))
    parts = spec.split("/")
    if len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~")):
        return ModelSpec("hub", spec)
    raise BadInput(
        f"--model {spec!r}: not 'tiny', an existing folder, an s3:// folder or a hub id such as "
        "'openai/clip-vit-base-patch32'; check the value"
    )


def byte_level_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over single bytes: 2 specials + 256 byte symbols + each with `</w>` (514 tokens)."""
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())  # sorted: the library returns a set's order
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in alphabet:
        vocab.setdefault(symbol, len(vocab))
    for symbol in alphabet:
        vocab.setdefault(symbol + "</w>", len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_MAX_TEXT)


def tiny_processor() -> CLIPProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=byte_level_tokenizer())


def build_tiny(seed: int = 0) -> tuple[CLIPModel, CLIPProcessor]:
    """A small CLIP (64-d, 2+2 layers, 32 px images as one patch, byte tokens), built offline, the same for a seed.

    About 0.4M parameters: fast enough to pretrain and fine-tune on two CPU cores in minutes. The vision
    tower sees the whole 32 px image as a single patch. Why: at random init a ViT's class token is close to
    the mean of its patch tokens, which discards the picture's layout, and a few minutes of training on a
    few thousand pictures do not learn it back (on the built-in archive a 64 px, 8 px-patch tower reached
    validation ARI 0.14 after pretrain + SupCon, below plain pixel cosine's 0.37). With one patch the tower
    starts as a random projection of the pixels and learns from there (0.36 image-only, and the pooled
    multimodal embedding 0.89 instead of 0.86). 32 px also blurs away halftone dots and scan noise.
    """
    processor = tiny_processor()
    tok = processor.tokenizer
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok.get_vocab()),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": TINY_MAX_TEXT,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": TINY_IMAGE_SIZE,
            "patch_size": TINY_PATCH_SIZE,
        },
        projection_dim=64,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = CLIPModel(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.eval()
    return model, processor


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the state dict (sorted names, raw bytes): equal weights give equal fingerprints."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()[:16]


def save_model(model: CLIPModel, processor: CLIPProcessor, out: str, meta: dict | None = None) -> None:
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


def _local_copy(uri: str) -> str:
    """Copy an `s3://` model folder into a local cache folder keyed by its URI and return the path."""
    fs, inner = filesystem(uri)
    if not fs.exists(inner + "/config.json"):
        raise BadInput(f"model folder {uri}: no config.json; give a folder written by 'clippings pretrain/train'")
    key = hashlib.sha256(uri.encode()).hexdigest()[:16]
    local = os.path.join(tempfile.gettempdir(), "clippings-models", key)
    if os.path.isdir(local):
        return local
    tmp = local + f".tmp{os.getpid()}"
    fs.get(inner.rstrip("/") + "/", tmp, recursive=True)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    try:
        os.replace(tmp, local)
    except OSError:  # another process finished the copy first
        pass
    return local


@dataclass
class LoadedModel:
    """A CLIP model ready to embed: its processor, a display name and a weights fingerprint."""

    model: CLIPModel
    processor: CLIPProcessor
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
            out = self.model.get_image_features(pixel_values=pixel_values)
        return _unit(out.pooler_output)

    @torch.no_grad()
    def embed_texts(self, captions: list[str]) -> np.ndarray:
        """Unit-norm text embeddings (float32, (n, d)) of raw captions (tokenised here)."""
        tokens = self.tokenize(captions)
        return self.embed_tokens(tokens["input_ids"], tokens["attention_mask"])

    @torch.no_grad()
    def embed_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
        """Unit-norm text embeddings of already tokenised captions."""
        with _autocast(self.device, self.dtype):
            out = self.model.get_text_features(
                input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device)
            )
        return _unit(out.pooler_output)

    def tokenize(self, captions: list[str]) -> dict[str, torch.Tensor]:
        return tokenize(self.processor, self.model, captions)

    def preprocess_images(self, images: list) -> torch.Tensor:
        return preprocess_images(self.processor, images)


def tokenize(processor: CLIPProcessor, model: CLIPModel, captions: list[str]) -> dict[str, torch.Tensor]:
    """Pad to the batch's longest caption, truncate to the model's maximum text length."""
    max_len = model.config.text_config.max_position_embeddings
    return processor.tokenizer(
        [c or "" for c in captions], padding=True, truncation=True, max_length=max_len, return_tensors="pt"
    )


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes to RGB; raises ValueError with a short reason when undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises many types for corrupt data
        raise ValueError(f"undecodable image ({type(e).__name__}: {str(e)[:80]})") from e


def preprocess_images(processor: CLIPProcessor, images: list) -> torch.Tensor:
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


def load_model(spec: str, device: str = "cpu", dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a CLIP model and processor from a `--model` value, in eval mode on `device`.

    Hub ids work for users who are online; offline, the error says so and suggests `--model tiny` or a
    local folder. A folder that is not a CLIP model folder is a one-line BadInput.
    """
    resolved = resolve_model_spec(spec)
    if resolved.kind == "tiny":
        model, processor = build_tiny()
        name, location = TINY, None
    else:
        path = _local_copy(resolved.location) if resolved.kind == "s3" else resolved.location
        if resolved.kind == "folder" and not os.path.isfile(os.path.join(path, "config.json")):
            raise BadInput(
                f"model folder {path}: no config.json; give a folder written by 'clippings pretrain/train'"
            )
        try:
            model = CLIPModel.from_pretrained(path)
            processor = CLIPProcessor.from_pretrained(path)
        except OSError as e:
            if resolved.kind == "hub":
                raise BadInput(
                    f"--model {spec!r}: could not load from the Hugging Face hub (offline or unknown id: "
                    f"{str(e).splitlines()[0][:120]}); use --model tiny or a local model folder"
                ) from e
            raise BadInput(f"model folder {spec}: not a loadable CLIP model ({str(e).splitlines()[0][:120]}); "
                           "re-run the training that wrote it") from e
        except Exception as e:  # corrupt weights, wrong architecture
            raise BadInput(f"model {spec}: not a loadable CLIP model ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:120]}); give a CLIP model folder") from e
        name = resolved.location if resolved.kind != "folder" else os.path.basename(path.rstrip("/"))
        location = resolved.location
    fingerprint = weights_fingerprint(model)
    model.to(device=device, dtype=dtype if device.startswith("cuda") else torch.float32)
    model.eval()
    return LoadedModel(model, processor, name, fingerprint, device, dtype, location)
