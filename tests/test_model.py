"""The offline tiny CLIP: deterministic, a plain HF folder, unit-norm embeddings, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor, CLIPModel

from clippings.errors import BadInput
from clippings.model import load_model, resolve_model_spec


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)) for _ in range(n)]


def test_tiny_is_deterministic_and_reloads_identically(tiny_model_dir):
    saved = load_model(str(tiny_model_dir))
    fresh = load_model("tiny")
    assert saved.fingerprint == fresh.fingerprint
    pixels = fresh.preprocess_images(_images(3))
    captions = ["Gen. Pershing at El Paso", "rn/m confusions: tbe Presideut", ""]
    np.testing.assert_allclose(saved.embed_images(pixels), fresh.embed_images(pixels), atol=1e-6)
    np.testing.assert_allclose(saved.embed_texts(captions), fresh.embed_texts(captions), atol=1e-6)
    text = fresh.embed_texts(captions)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_tiny_folder_opens_with_plain_transformers(tiny_model_dir):
    model = CLIPModel.from_pretrained(str(tiny_model_dir))
    processor = AutoProcessor.from_pretrained(str(tiny_model_dir))
    ids = processor.tokenizer("Wörld 1916")["input_ids"]
    assert ids[0] == processor.tokenizer.bos_token_id and ids[-1] == model.config.text_config.eos_token_id
    assert processor.tokenizer.unk_token_id not in ids[1:-1]


def test_model_loads_from_s3(tiny_model_dir, s3_bucket):
    from clippings.archive import filesystem

    fs, inner = filesystem(f"{s3_bucket}/models/tiny")
    fs.put(str(tiny_model_dir) + "/", inner, recursive=True)
    loaded = load_model(f"{s3_bucket}/models/tiny")
    assert loaded.fingerprint == load_model("tiny").fingerprint


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("not a model", "--model 'not a model': not a built-in \\(tiny, minilm\\), an existing folder"),
        ("./missing/folder/x", "--model './missing/folder/x': not a built-in \\(tiny, minilm\\), an existing folder"),
    ],
)
def test_bad_model_spec(spec, message):
    with pytest.raises(BadInput, match=message):
        resolve_model_spec(spec)


def test_folder_without_config_is_one_clear_line(tmp_path):
    with pytest.raises(BadInput) as err:
        load_model(str(tmp_path))
    assert str(err.value) == (
        f"model folder {tmp_path}: no config.json; give a folder written by 'clippings pretrain/train/compose'"
    )
