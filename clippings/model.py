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

import contextlib
import hashlib
import io
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTokenizer, VisionTextDualEncoderModel
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from clippings.archive import filesystem, is_remote
from clippings.errors import BadInput
from clippings.model_meta import META_FILE, update_clippings_meta

TINY = "tiny"
TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 32  # one patch per image: see build_tiny
TINY_MAX_TEXT = 128
MAX_TEXT_TOKENS = 128  # captions are truncated here at most: OCR captions of clippings are short
BUILTINS = ("tiny", "minilm")
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
    model = seeded(lambda: CLIPModel(config), seed)
    model.eval()
    return model, processor


def seeded(build, seed: int):
    """Run `build()` with torch's global generator at `seed`, restoring it after: a built-in model is the same
    for a seed, and building one does not change the caller's random stream."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return build()
    finally:
        torch.random.set_rng_state(state)


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


FETCH_TRIES = 3
STALE_COPY_S = 3600.0  # far longer than a load reads its copy: older copies of the same URI are not in use


def _local_copy(uri: str) -> str:
    """A local copy of the `s3://` model folder `uri` as it is now, fetched unless already cached; its path.

    The cache folder of a copy is named by what the folder holds (each file's name and ETag, see
    `_listing`), so a model re-trained into the same prefix is fetched anew instead of loading the old
    weights. A copy is complete once it has its name (fetched under a temporary name, then renamed; a
    process that loses the race to another discards its own) and never changes after. A fetch during
    which the folder changed (a training writing it) is discarded and tried again. Copies of `uri` unused
    for `STALE_COPY_S` are removed when it is next loaded. `clippings.json` is not copied (it changes when
    `tune` records a choice, not the weights): it is always read from `uri` itself.
    """
    fs, inner = filesystem(uri)
    uri_key = "s3-" + hashlib.sha256(uri.encode()).hexdigest()[:16]
    root = os.path.join(tempfile.gettempdir(), "clippings-models", uri_key)
    for _ in range(FETCH_TRIES):
        files = _listing(fs, inner, uri)
        copy = os.path.join(root, _content_key(files))
        if _claim(copy) or _fetch(fs, inner, uri, files, copy):
            _remove_stale(root, keep=copy)
            return copy
    raise BadInput(f"model folder {uri}: its files changed while being copied, {FETCH_TRIES} times (a "
                   "training still writing it?); load it once it is written")


def _listing(fs, inner: str, uri: str) -> dict[str, str]:
    """Each file of the model folder (path inside it → version), listed fresh, `clippings.json` aside.

    The version is the ETag (S3 changes it whenever the object is rewritten), or size and modification time
    where a store gives none. Raises BadInput for a folder without config.json.
    """
    fs.invalidate_cache(inner)  # s3fs keeps listings per process: a rewrite by another machine is not in them
    prefix = inner.rstrip("/") + "/"
    files = {
        path[len(prefix):]: _version(info)
        for path, info in fs.find(inner, detail=True).items()
        if path.startswith(prefix) and info.get("type") != "directory"
    }
    files.pop(META_FILE, None)
    if "config.json" not in files:
        raise BadInput(
            f"model folder {uri}: no config.json; give a folder written by 'clippings pretrain/train'"
        )
    return files


def _version(info: dict[str, Any]) -> str:
    """What changes when a file is rewritten: its ETag, else its size and modification time."""
    if info.get("ETag"):
        return str(info["ETag"])
    return f"{info.get('size')}@{info.get('LastModified') or info.get('mtime')}"


def _content_key(files: dict[str, str]) -> str:
    """A name for a copy that changes whenever a file is added, removed or rewritten."""
    return hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:24]


def _claim(copy: str) -> bool:
    """Mark a finished copy as in use now (its modification time, see `_remove_stale`); False when absent."""
    try:
        os.utime(copy)
    except FileNotFoundError:
        return False
    return True


def _fetch(fs, inner: str, uri: str, files: dict[str, str], copy: str) -> bool:
    """Download exactly the listed `files` into `copy`; False (nothing kept) when the folder changed
    meanwhile."""
    tmp = os.path.join(os.path.dirname(copy), f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    names = sorted(files)
    targets = [os.path.join(tmp, *name.split("/")) for name in names]
    for target in targets:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        fs.get([f"{inner.rstrip('/')}/{name}" for name in names], targets)  # the files listed, no others
        if _listing(fs, inner, uri) != files:
            return False
        try:
            os.rename(tmp, copy)
        except OSError:  # another process finished the same copy first (a non-empty folder is not replaced)
            if not os.path.isdir(copy):
                raise
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale(root: str, keep: str) -> None:
    """Remove the copies of one URI and abandoned temporary folders unused for STALE_COPY_S, except `keep`.

    A load claims its copy (`_claim`) right before reading it, so a copy this old is not being read; a
    removal that races with another process is ignored.
    """
    now = time.time()
    for entry in os.scandir(root):
        with contextlib.suppress(OSError):
            if entry.path != keep and now - entry.stat(follow_symlinks=False).st_mtime > STALE_COPY_S:
                shutil.rmtree(entry.path)


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


def decode_image(data: bytes) -> Image.Image:
    """Decode encoded image bytes to RGB; raises ValueError with a short reason when undecodable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except Exception as e:  # PIL raises many types for corrupt data
        raise ValueError(f"undecodable image ({type(e).__name__}: {str(e)[:80]})") from e


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


def build_builtin(name: str, seed: int = 0) -> tuple[TwoTowerModel, Any]:
    """A built-in model and processor, built offline, the same for a seed."""
    if name == TINY:
        return build_tiny(seed)
    from clippings.towers import build_minilm

    return build_minilm(seed)


@contextlib.contextmanager
def quiet_hub():
    """Hold back huggingface_hub's per-retry warnings while it tries an unreachable hub: the failure is
    reported once, as one BadInput line, by the caller."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_pretrained(path: str, spec: str, kind: str) -> tuple[TwoTowerModel, Any]:
    """AutoModel + AutoProcessor from a folder or hub id, checked to be a two-tower model."""
    from transformers import AutoModel, AutoProcessor

    import clippings.towers  # noqa: F401  (registers the EfficientNet-Lite encoder with AutoModel)

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
        path = _local_copy(resolved.location) if resolved.kind == "s3" else resolved.location
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
