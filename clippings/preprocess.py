"""Pixels and tokens for a model: what the reader's rows become before a model sees them.

Embedding and training preprocess the same way (`preprocess_rows`), in CPU tasks, from a light description
of the model (`EmbedModel`: its processor and text length, shipped to every task instead of the weights).
Training keeps pixels as uint8 until the device (`uint8_pixels`: 3·H·W bytes an image, 4× less than float32,
through streams, object-store blocks and worker buffers); `clippings.train.pixels` finishes them there with
the same arithmetic the image processor would have done.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from clippings.image_paths import decode_image, read_image_bytes
from clippings.model import LoadedModel, embedding_dim, load_model, max_text_tokens


@dataclass(frozen=True)
class EmbedModel:
    """What preprocessing and embedding need to know about a model, light enough to ship to every task.

    spec: the `--model` value actors load; fingerprint/name: from the driver's load (actors check it);
    dim: embedding width; max_text_len: token limit; processor: the model's processor (tokenizer + images).
    """

    spec: str
    fingerprint: str
    name: str
    dim: int
    max_text_len: int
    processor: Any


def describe_model(spec: str) -> EmbedModel:
    """Load the model once on the driver for its fingerprint, width and processor; the weights are freed.

    Cost: one model load (seconds and the model's size in RAM, briefly).
    """
    return describe_loaded(spec, load_model(spec))


def describe_loaded(spec: str, loaded: LoadedModel) -> EmbedModel:
    """The `EmbedModel` of a model already loaded from `spec`."""
    return EmbedModel(spec, loaded.fingerprint, loaded.name, embedding_dim(loaded.model),
                      max_text_tokens(loaded.model), loaded.processor)


def uint8_pixels(processor: Any, images: list) -> np.ndarray:
    """Resize and crop PIL images with the model's image processor, without rescaling or normalising:
    (n, 3, H, W) uint8. Cost: one resize per image; 3·H·W bytes per image out."""
    raw = processor.image_processor(images=images, do_rescale=False, do_normalize=False,
                                    return_tensors="np")["pixel_values"]
    raw = np.asarray(raw, dtype=np.float32)
    np.rint(raw, out=raw)  # in place: a batch of 224 px images is ~40 MB of float32 per temporary
    return np.clip(raw, 0, 255, out=raw).astype(np.uint8)


def preprocess_rows(batch: pa.Table, model: EmbedModel, uint8: bool = False,
                    carry: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Decode and preprocess images, tokenise captions; a bad row gets a `reason` and zero tensors.

    batch: the reader's rows (`clipping_id`, `image`, `image_path`, `caption`, `shard`, `reason`; see
    `clippings.reader.read_part_rows`). Captions are padded to the model's maximum length with their true
    `length` kept, so any later batching can trim to its own longest caption (CLIP's causal text tower makes
    right padding inert). uint8: `pixels` resized and cropped but not normalised, (n, 3, H, W) uint8
    (`uint8_pixels`); otherwise `pixel_values` float32 ready for the model. carry: further columns of `batch`
    passed through unchanged (e.g. a training lane).
    """
    ids = batch.column("clipping_id").to_pylist()
    images = batch.column("image").to_pylist()
    paths = batch.column("image_path").to_pylist()
    captions = [c or "" for c in batch.column("caption").to_pylist()]  # null = no caption: linked by its image
    reasons, pil, ok = batch.column("reason").to_pylist(), [], []
    for i, (image, path) in enumerate(zip(images, paths, strict=True)):
        if reasons[i]:
            continue
        try:
            pil.append(decode_image(read_image_bytes(image, path)))
            ok.append(i)
        except ValueError as e:
            reasons[i] = str(e)
    size = model.processor.image_processor.crop_size
    pixels = np.zeros((len(ids), 3, size["height"], size["width"]), np.uint8 if uint8 else np.float32)
    tokens = np.zeros((len(ids), model.max_text_len), np.int64)
    lengths = np.zeros(len(ids), np.int64)
    if ok:
        pixels[ok] = (uint8_pixels(model.processor, pil) if uint8 else
                      model.processor.image_processor(images=pil, return_tensors="np")["pixel_values"])
        encoded = model.processor.tokenizer(
            [captions[i] for i in ok], padding="max_length", truncation=True, max_length=model.max_text_len,
            return_tensors="np",
        )
        tokens[ok] = encoded["input_ids"]
        lengths[ok] = encoded["attention_mask"].sum(axis=1)
    return {
        "clipping_id": np.asarray(ids, dtype=object),
        "shard": np.asarray(batch.column("shard").to_pylist(), dtype=object),
        "pixels" if uint8 else "pixel_values": pixels,
        "input_ids": tokens,
        "length": lengths,
        "reason": np.asarray(reasons, dtype=object),
        **{c: batch.column(c).to_numpy(zero_copy_only=False) for c in carry},
    }
