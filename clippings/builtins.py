"""The built-in models, built offline and the same for a seed: `tiny`, a small CLIP with a byte-level
tokenizer (every byte is a token, which suits OCR noise), and `minilm`, the packaged all-MiniLM-L6-v2 text
encoder composed with a small image tower (`clippings.towers`)."""

from __future__ import annotations

from typing import Any

from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    VisionTextDualEncoderModel,
    VisionTextDualEncoderProcessor,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from clippings.hf import seeded
from clippings.towers import MINILM, MINILM_VISION, TINY_IMAGE_SIZE, TINY_PATCH_SIZE, compose

TINY = "tiny"
TINY_MAX_TEXT = 128
BUILTINS = (TINY, MINILM)


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
    few thousand pictures do not learn it back (a patched tower fell below plain pixel cosine on the
    built-in archive: docs/benchmarks.md). With one patch the tower starts as a random projection of the
    pixels and learns from there. 32 px also blurs away halftone dots and scan noise.
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


def build_minilm(seed: int = 0) -> tuple[VisionTextDualEncoderModel, VisionTextDualEncoderProcessor]:
    """The built-in pretrained model: MiniLM text tower + the `MINILM_VISION` image tower, offline."""
    return compose(MINILM_VISION, MINILM, seed=seed)


def build_builtin(name: str, seed: int = 0) -> tuple[CLIPModel | VisionTextDualEncoderModel, Any]:
    """A built-in model and processor, built offline, the same for a seed."""
    if name == TINY:
        return build_tiny(seed)
    return build_minilm(seed)
