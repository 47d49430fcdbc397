"""The offline tiny CLIP: deterministic, a plain HF folder, unit-norm embeddings, clear errors."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pytest
from PIL import Image
from transformers import AutoProcessor, CLIPModel

from clippings.builtins import build_tiny
from clippings.errors import BadInput
from clippings.model import load_model, resolve_model_spec, save_model, weights_fingerprint


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
    from clippings.storage import filesystem

    fs, inner = filesystem(f"{s3_bucket}/models/tiny")
    fs.put(str(tiny_model_dir) + "/", inner, recursive=True)
    loaded = load_model(f"{s3_bucket}/models/tiny")
    assert loaded.fingerprint == load_model("tiny").fingerprint


def _save_tiny(seed: int, uri: str) -> str:
    """Save the tiny CLIP of `seed` to `uri` (a rewrite of the same files with other weights); its fingerprint."""
    model, processor = build_tiny(seed=seed)
    save_model(model, processor, uri)
    return weights_fingerprint(model)


def _copies(cache) -> set[str]:
    """The cached copies of the one S3 model a test loads (the paths in its URI's cache folder)."""
    (uri_folder,) = (cache / "clippings-models").iterdir()
    return {str(p) for p in uri_folder.iterdir()}


def test_model_retrained_on_s3_loads_the_new_weights(s3_bucket, tmp_path, monkeypatch):
    """A model re-trained into the same prefix is fetched again; a copy unused for an hour is removed."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uri = f"{s3_bucket}/models/retrained"
    first = _save_tiny(0, uri)
    assert load_model(uri).fingerprint == first
    before = _copies(tmp_path)
    second = _save_tiny(1, uri)
    assert second != first
    assert load_model(uri).fingerprint == second
    (old,) = before
    (new,) = _copies(tmp_path) - {old}  # the old copy stays a while: another process may be reading it
    hour_ago = time.time() - 3700
    for path in (old, new):
        os.utime(path, (hour_ago, hour_ago))
    assert load_model(uri).fingerprint == second  # claims its copy again and removes the unused one
    assert _copies(tmp_path) == {new}


def test_model_rewritten_while_copied_is_copied_again(s3_bucket, tmp_path, monkeypatch):
    """A training that rewrites the folder during a copy: that copy is discarded, the new weights load."""
    from clippings.storage import filesystem

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uri = f"{s3_bucket}/models/moving"
    _save_tiny(0, uri)
    fs, _ = filesystem(uri)
    get, rewritten = fs.get, []

    def get_then_retrain(*args, **kwargs):
        get(*args, **kwargs)
        if not rewritten:
            rewritten.append(_save_tiny(2, uri))

    monkeypatch.setattr(fs, "get", get_then_retrain)
    assert load_model(uri).fingerprint == rewritten[0]
    assert len(_copies(tmp_path)) == 1  # no half-old copy, no temporary folder left


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
