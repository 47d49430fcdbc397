"""A second view of each image, as another scan of the same print: the image-image term of pretraining.

Why: LiT-style pretraining (a locked pretrained text tower) teaches the image tower to predict the caption,
and the image embedding then repeats what the text tower already says. Reprint identity in images lives in
low-resolution layout and tone (docs/models.md#which-image-tower), which a caption does not carry, so LiT
pretraining alone can leave the pooled embedding linking worse than the untrained image tower beside the
same text tower (docs/benchmarks.md#pretraining-settings-at-medium). The view term asks the image tower to tell each image from the batch's others under what reprinting does to a
photo: a small shift and crop, a change of exposure and contrast, grain.

`scan_view` is SupCon's counterpart (`clippings train --view-p`): a training image replaced by another
print and scan of it, drawn from the hard archive's family of degradations, so that a tower learns what
survives reprinting from more than the archive's few reprints of each photo.

The views are drawn on the worker's device from a generator the caller seeds (per epoch and rank, so a run
resumed at an epoch boundary draws the same views).
"""

from __future__ import annotations

import math

import torch

from clippings.synth.difficulty import HARD, ScanModel

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
SCAN_SIDE = 112
"""The hard archive's scans are 96-128 px on the long side: `scan_view` scales its blur from there."""
SCREEN_AMPLITUDE = 0.08
"""Largest amplitude (in [0, 1] grey) of `scan_view`'s aliased screen: the moiré a dot screen leaves."""
MOIRE_PERIOD = (2.0, 8.0)
"""Period of that moiré in the input's pixels: a screen of 1.2-3 scan pixels per line, aliased."""


def view_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a rank's views in an epoch: a function of (seed, epoch, rank) alone, so a run resumed at an
    epoch boundary draws the same views."""
    return (seed * 1_000_003 + epoch) * 1_009 + rank


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


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Each image of x (B, C, H, W) blurred with its own Gaussian sigma (B,) in pixels (5-tap, separable)."""
    b, c, h, w = x.shape
    taps = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigma.clamp(min=1e-3)[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B·C, 5)
    flat = x.reshape(1, b * c, h, w)
    flat = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (2, 2, 0, 0), mode="replicate"),
                                      kernel[:, None, None, :], groups=b * c)
    flat = torch.nn.functional.conv2d(torch.nn.functional.pad(flat, (0, 0, 2, 2), mode="replicate"),
                                      kernel[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, h, w)


def scan_view(pixels: torch.Tensor, generator: torch.Generator, model: ScanModel = HARD.scan) -> torch.Tensor:
    """Another paper's print and scan of each image: a view from the hard archive's own family of degradations
    (`clippings.synth.difficulty.ScanModel`), for SupCon's training images.

    pixels: (B, C, H, W) in [0, 1]; returns the same shape in [0, 1]. Drawn per image, as the archive draws a
    reprint: a crop keeping `model.crop` of the side with the aspect jittered by `model.aspect`, rotated by up
    to `model.rotation_deg`, sometimes flopped, scaled back to the input size; the tone curve (contrast,
    brightness, gamma) onto the paper's white and the ink's black; an aliased screen (moiré) with the
    halftone's probability; the scanner's blur, uneven light and grain. Blur and screen are in the input's
    pixels scaled from the archive's ~112 px scans. Not drawn: JPEG blocks and the colour tint (a JPEG
    round trip is not a tensor operation; the tint is one channel gain). The generator alone decides the
    views, so a resumed epoch draws the same ones.
    """
    b, _, h, w = pixels.shape
    device = pixels.device

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(b, generator=generator, device=device)

    def coin(p: float) -> torch.Tensor:
        return torch.rand(b, generator=generator, device=device) < p

    side = uniform(model.crop)
    stretch = torch.exp(uniform((-1.0, 1.0)) * math.log1p(model.aspect))
    sx, sy = (side * stretch.sqrt()).clamp(max=1.0), (side / stretch.sqrt()).clamp(max=1.0)
    angle = torch.deg2rad(uniform((-model.rotation_deg, model.rotation_deg)))
    flop = torch.where(coin(model.flop_p), -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = sx * angle.cos() * flop, -sy * angle.sin()
    theta[:, 1, 0], theta[:, 1, 1] = sx * angle.sin() * flop, sy * angle.cos()
    theta[:, 0, 2], theta[:, 1, 2] = uniform((-1.0, 1.0)) * (1 - sx), uniform((-1.0, 1.0)) * (1 - sy)
    grid = torch.nn.functional.affine_grid(theta, list(pixels.shape), align_corners=False)
    x = torch.nn.functional.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.view(b, 1, 1, 1)

    contrast, gamma = per_image(uniform(model.contrast)), per_image(uniform(model.gamma))
    brightness = per_image(model.brightness * torch.randn(b, generator=generator, device=device))
    x = ((x - 0.5) * contrast + 0.5 + brightness).clamp(0.0, 1.0) ** gamma
    paper, ink = per_image(uniform(model.paper)), per_image(uniform(model.ink))
    x = ink + (paper - ink) * x
    scale = w / SCAN_SIDE
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=x.dtype), torch.arange(w, device=device, dtype=x.dtype),
                            indexing="ij")
    angle, phase = per_image(uniform((0.0, math.pi))), per_image(uniform((0.0, 2 * math.pi)))
    period = per_image(uniform(MOIRE_PERIOD))
    wave = torch.cos(2 * math.pi * (xs * angle.cos() + ys * angle.sin()) / period + phase)
    x = x + per_image(coin(model.halftone_p) * uniform((0.0, SCREEN_AMPLITUDE))) * wave
    x = _gaussian_blur(x, uniform(model.blur) * scale) if scale * model.blur[1] > 0.2 else x
    direction = per_image(uniform((0.0, 2 * math.pi)))
    ramp = (xs / w) * direction.cos() + (ys / h) * direction.sin()
    ramp = (ramp - ramp.amin(dim=(2, 3), keepdim=True)) / (
        ramp.amax(dim=(2, 3), keepdim=True) - ramp.amin(dim=(2, 3), keepdim=True)).clamp(min=1e-6)
    x = x * (1 - per_image(uniform(model.shading)) * ramp)
    x = x + per_image(uniform(model.grain)) * torch.randn(x.shape, generator=generator, device=device)
    return x.clamp(0.0, 1.0)
