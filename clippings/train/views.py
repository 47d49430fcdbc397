"""A second view of each image, as another scan of the same print: the image-image term of pretraining.

Why: LiT-style pretraining (a locked pretrained text tower) teaches the image tower to predict the caption,
and the image embedding then repeats what the text tower already says. Reprint identity in images lives in
low-resolution layout and tone (docs/models.md#which-image-tower), which a caption does not carry, so LiT
pretraining alone can leave the pooled embedding linking worse than the untrained image tower beside the
same text tower (docs/benchmarks.md#pretraining-settings-at-medium). The view term asks the image tower to tell each image from the batch's others under what reprinting does to a
photo: a small shift and crop, a change of exposure and contrast, grain.

The views are drawn on the worker's device from a generator the caller seeds (per epoch and rank, so a run
resumed at an epoch boundary draws the same views).
"""

from __future__ import annotations

import torch

MAX_SHIFT = 0.05
"""Largest shift of the view, as a fraction of the image side (a crop that moves the frame)."""
MIN_ZOOM = 0.9
"""Smallest fraction of the side a view keeps (a tighter crop, scaled back up)."""
TONE = 0.2
"""Largest change of exposure (added, in the normalised pixel units) and of contrast (relative)."""
GRAIN = 0.05
"""Standard deviation of the added per-pixel noise (normalised units): halftone and scan grain."""
VIEW_TEMPERATURE = 0.1
"""Temperature of the image-image InfoNCE (SupCon's τ in clippings.train.supcon)."""


def reprint_view(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A randomly re-scanned copy of normalised pixels (B, C, H, W): zoom into [MIN_ZOOM, 1] of the side,
    shift by up to MAX_SHIFT, exposure and contrast changed by up to TONE, then grain. Differentiable in
    nothing (pixels carry no gradient); one bilinear resample per image."""
    b = len(pixels)
    device = pixels.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(b, generator=generator, device=device)

    zoom = uniform(MIN_ZOOM, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = zoom
    theta[:, 0, 2] = uniform(-MAX_SHIFT, MAX_SHIFT) * 2
    theta[:, 1, 2] = uniform(-MAX_SHIFT, MAX_SHIFT) * 2
    grid = torch.nn.functional.affine_grid(theta, list(pixels.shape), align_corners=False)
    view = torch.nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="border",
                                           align_corners=False)
    contrast = uniform(1.0 - TONE, 1.0 + TONE).view(b, 1, 1, 1)
    exposure = uniform(-TONE, TONE).view(b, 1, 1, 1)
    mean = view.mean(dim=(1, 2, 3), keepdim=True)
    grain = GRAIN * torch.randn(view.shape, generator=generator, device=device)
    return (view - mean) * contrast + mean + exposure + grain
