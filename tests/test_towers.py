"""The built-in vision towers compared on the hard archive (bench.towers): each builds offline, maps images of
its documented size to finite embeddings of its declared width, and composes with MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from clippings.model import image_features
from clippings.params import VISION_BUILTINS
from clippings.towers import compose_towers, text_encoder, vision_encoder

# name: (input side in px, pooled width the projection head reads)
NEW_TOWERS = {"vit-patch8-64": (64, 64), "cnn-pool": (64, 128)}


@pytest.fixture(scope="module")
def minilm():
    return text_encoder("minilm")


@pytest.mark.parametrize("name", sorted(NEW_TOWERS))
def test_new_tower_builds_offline_and_composes_with_minilm(name, minilm):
    size, width = NEW_TOWERS[name]
    assert name in VISION_BUILTINS  # compose --vision accepts it
    vision, processor = vision_encoder(name, seed=3)
    again, _ = vision_encoder(name, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(vision.state_dict().values(), again.state_dict().values(), strict=True))
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(70, 90), (120, 64)]]
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (2, 3, size, size)
    with torch.no_grad():
        pooled = vision(pixel_values=pixels).pooler_output
    assert tuple(pooled.shape) == (2, width) and torch.isfinite(pooled).all()

    model, _ = compose_towers(vision, processor, *minilm, seed=3)
    assert model.config.vision_pooling == "pooler" and model.visual_projection.in_features == width
    with torch.no_grad():
        emb = image_features(model, pixels)
    assert tuple(emb.shape) == (2, 384) and torch.isfinite(emb).all() and (emb.norm(dim=1) > 0).all()
    unit = torch.nn.functional.normalize(emb, dim=1)
    np.testing.assert_allclose(unit.norm(dim=1).numpy(), 1.0, atol=1e-5)
    # the signed-permutation head (384 ≥ width: W^T W = I) keeps the tower's own cosine of the two pictures
    own = torch.nn.functional.cosine_similarity(pooled[0], pooled[1], dim=0)
    assert float(unit[0] @ unit[1]) == pytest.approx(float(own), abs=1e-5)
