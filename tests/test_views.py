"""SupCon's training views (`clippings.train.views.scan_view`, `clippings train --view-p`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch


def _pictures(n: int = 32, side: int = 32) -> torch.Tensor:
    """n smooth random grey pictures in [0, 1] (a 4×4 field upsampled), three equal channels."""
    g = torch.Generator().manual_seed(0)
    field = torch.rand(n, 1, 4, 4, generator=g)
    grey = torch.nn.functional.interpolate(field, size=(side, side), mode="bicubic", align_corners=False)
    return grey.clamp(0, 1).repeat(1, 3, 1, 1)


def _unit(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1) - x.flatten(1).mean(dim=1, keepdim=True)
    return flat / flat.norm(dim=1, keepdim=True)


def test_scan_views_are_seeded_rescans_that_stay_pictures_of_their_print():
    """A view keeps the shape and range, the generator's seed alone decides it (a resumed epoch draws the same
    views), it changes every picture, and it still looks most like its own print among 32 (pixel cosine)."""
    from clippings.train.views import scan_view

    pictures = _pictures()
    view = scan_view(pictures, torch.Generator().manual_seed(5))
    assert view.shape == pictures.shape and float(view.min()) >= 0 and float(view.max()) <= 1
    assert torch.equal(view, scan_view(pictures, torch.Generator().manual_seed(5)))
    assert not torch.allclose(view, scan_view(pictures, torch.Generator().manual_seed(6)))
    assert bool(((view - pictures).abs().flatten(1).mean(dim=1) > 0.01).all())
    nearest = (_unit(view) @ _unit(pictures).T).argmax(dim=1)
    assert float((nearest == torch.arange(len(pictures))).float().mean()) >= 0.75


@pytest.mark.parametrize("view_p", [0.0, 0.5, 1.0])
def test_view_p_replaces_that_share_of_the_training_images(view_p):
    """SupConTask.view swaps each image for its scan view with probability view_p: none at 0, all at 1, about
    half at 0.5 (of 400), and the rest untouched bit for bit."""
    from clippings.train.settings import SupConSettings
    from clippings.train.supcon import SupConTask

    task = SupConTask(SupConSettings(view_p=view_p), None, None)
    task.views = torch.Generator().manual_seed(0)
    pictures = _pictures(400, 16)
    out = task.view(pictures)
    kept = (out == pictures).flatten(1).all(dim=1).float().mean()
    assert abs(float(kept) - (1 - view_p)) <= 0.08


def test_a_view_probability_outside_0_to_1_is_refused_in_one_line(capsys, tmp_path):
    from clippings.cli import main

    out = str(tmp_path / "model")
    assert main(["train", "--archive", "a", "--val", "v", "--out", out, "--model", "tiny", "--view-p", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "view_p" in err[0] and "1.5" in err[0]


def test_a_run_records_view_p_only_when_it_is_used():
    """Runs recorded before `view_p` existed trained without views: at 0 the record is theirs, so they resume."""
    from clippings.train.settings import SupConSettings
    from clippings.train.supcon import run_values

    assert "view_p" not in run_values(SupConSettings())
    assert run_values(SupConSettings(view_p=0.5))["view_p"] == 0.5
    assert {**run_values(SupConSettings()), "view_p": 0.0} == dataclasses.asdict(SupConSettings())
