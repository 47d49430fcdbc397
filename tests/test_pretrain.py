"""CLIP pretraining on real Ray Train workers (gloo), through the CLI and the library."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch

from clippings import cli


def _metrics(run_path: str) -> list[dict]:
    with open(os.path.join(run_path, "metrics.csv")) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cli_pretrain_writes_a_plain_hf_model(pretrained):
    from transformers import CLIPModel

    rc, out = pretrained
    assert rc == 0
    model = CLIPModel.from_pretrained(out)
    assert isinstance(model, CLIPModel)
    with open(os.path.join(out, "clippings.json")) as f:
        meta = json.load(f)
    assert meta["stage"] == "pretrain" and meta["workers"] == 2
    assert meta["data"]["archive"]["rows"] == 180 and len(meta["data"]["archive"]["ids_sha256"]) == 16
    rows = _metrics(meta["run"])
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert meta["val_loss"] == min(float(r["val_loss"]) for r in rows)  # the best epoch was written
    assert float(rows[1]["loss"]) < float(rows[0]["loss"])  # it learns


@pytest.mark.slow
def test_one_worker_matches_two_workers(pretrained, train_archives, tmp_path):
    """Same data, seed and global batch: the 2-worker run gathers all negatives and sums exact gradients, so
    its losses equal the 1-worker run's up to float summation order (gloo all-reduce of two halves, 1 vs 2
    threads), which stays far below 1e-3 relative over two epochs of AdamW on this tiny model."""
    from clippings.train.pretrain import pretrain

    _, out2 = pretrained
    with open(os.path.join(out2, "clippings.json")) as f:
        two = _metrics(json.load(f)["run"])
    state = pretrain(train_archives["unlabelled"], str(tmp_path / "one"), workers=1, epochs=2, batch_size=32,
                     seed=3)
    one = state["history"]
    for a, b in zip(one, two, strict=True):
        assert a["loss"] == pytest.approx(float(b["loss"]), rel=1e-3)
        assert a["val_loss"] == pytest.approx(float(b["val_loss"]), rel=1e-3)


def test_clip_loss_is_symmetric_infonce():
    from clippings.train.pretrain import clip_loss

    img = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(5, 4), dim=-1)
    scale = torch.tensor(10.0)
    logits = 10.0 * img @ txt.T
    expected = sum(-torch.log_softmax(logits, 1)[i, i] - torch.log_softmax(logits, 0)[i, i] for i in range(5)) / 10
    assert float(clip_loss(img, txt, scale)) == pytest.approx(float(expected), rel=1e-5)


def test_bad_parameters_are_one_line_exit_2(capsys, train_archives, tmp_path):
    rc = cli.main(["pretrain", "--archive", train_archives["unlabelled"], "--out", str(tmp_path / "m"),
                   "--lr", "0"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        "clippings pretrain: error: The 'lr' parameter of pretrain must be a float in the range (0.0, 1.0]. "
        "Got 0.0 instead.")


@pytest.mark.parametrize("flags, says", [
    (["--clip-weight", "0"], "--clip-weight 0 and --view-weight 0 leave no loss to train"),
    (["--clip-weight", "0", "--view-weight", "1"], "add --text-lr 0 to lock it"),
])
def test_clip_weight_zero_needs_a_view_term_and_a_locked_text_tower(capsys, train_archives, tmp_path, flags, says):
    rc = cli.main(["pretrain", "--archive", train_archives["unlabelled"], "--out", str(tmp_path / "m"), *flags])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clippings pretrain: error: ") and says in err and "\n" not in err


def test_reprint_views_are_seeded_rescans_of_the_image():
    """A view keeps the picture (shifted, cropped, toned, grained: still far nearer its own image than another
    image), and the generator's seed alone decides it (a resumed epoch draws the same views)."""
    from clippings.train.views import reprint_view

    gen = torch.Generator().manual_seed(0)
    pixels = torch.nn.functional.interpolate(torch.randn(8, 3, 4, 4, generator=gen), size=32, mode="bilinear")
    a = reprint_view(pixels, torch.Generator().manual_seed(5))
    assert a.shape == pixels.shape
    assert torch.equal(a, reprint_view(pixels, torch.Generator().manual_seed(5)))
    assert not torch.allclose(a, reprint_view(pixels, torch.Generator().manual_seed(6)))
    assert not torch.allclose(a, pixels)
    flat = lambda t: torch.nn.functional.normalize((t - t.mean((1, 2, 3), keepdim=True)).flatten(1), dim=1)  # noqa: E731
    sims = flat(a) @ flat(pixels).T
    own = sims.diagonal()
    assert float(own.min()) > 0.85
    assert bool((own > sims.masked_fill(torch.eye(8, dtype=torch.bool), -1).max(dim=1).values + 0.5).all())


@pytest.mark.slow
def test_view_term_adds_to_the_loss_and_is_learnt(retrained):
    """With --view-weight the validation loss is the CLIP loss plus λ × the image-view loss (both reported),
    the view loss falls as the image tower learns to tell prints from each other, and the weight is recorded
    in the model's clippings.json (the session's `retrained`, tests/conftest.py)."""
    assert retrained["rc"] == 0
    with open(os.path.join(retrained["out"], "clippings.json")) as f:
        meta = json.load(f)
    assert meta["view_weight"] == 0.5
    rows = _metrics(meta["run"])
    for r in rows:
        assert float(r["val_loss"]) == pytest.approx(float(r["val_clip_loss"]) + 0.5 * float(r["val_view_loss"]),
                                                     rel=1e-5)
    assert float(rows[-1]["val_view_loss"]) < float(rows[0]["val_view_loss"])


@pytest.mark.slow
def test_clip_weight_zero_trains_the_image_tower_on_its_views_alone(train_archives, ray_local, tmp_path):
    """--clip-weight 0 --view-weight λ --text-lr 0: the loss is λ × the view loss alone, the image tower learns
    from it, and the locked text tower and the temperature leave pretraining as they came in."""
    from clippings.model import load_model

    rc = cli.main(["pretrain", "--archive", train_archives["unlabelled"], "--out", str(tmp_path / "m"),
                   "--epochs", "2", "--batch-size", "32", "--seed", "3", "--view-weight", "0.5",
                   "--clip-weight", "0", "--text-lr", "0"])
    assert rc == 0
    with open(tmp_path / "m" / "clippings.json") as f:
        meta = json.load(f)
    assert meta["clip_weight"] == 0.0 and meta["view_weight"] == 0.5
    rows = _metrics(meta["run"])
    for r in rows:
        assert float(r["val_loss"]) == pytest.approx(0.5 * float(r["val_view_loss"]), rel=1e-5)
    assert float(rows[-1]["val_view_loss"]) < float(rows[0]["val_view_loss"])
    before, after = load_model("tiny").model.state_dict(), load_model(str(tmp_path / "m")).model.state_dict()
    text = [k for k in before if k.startswith(("text_model.", "text_projection"))]
    assert text and all(torch.equal(before[k], after[k]) for k in text)
    assert float(after["logit_scale"]) == pytest.approx(float(before["logit_scale"]))
    vision = [k for k in before if k.startswith("vision_model.")]
    assert any(not torch.equal(before[k], after[k]) for k in vision)
