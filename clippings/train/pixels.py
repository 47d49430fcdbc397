"""Pixels travel as uint8 from the decoding tasks to the training worker and become float on its device.

A preprocessed 224 px image is 150 KB as uint8 against 600 KB as float32, so streams, object-store blocks
and worker buffers are 4× smaller. The split follows the image processor's own steps: resize and centre
crop (Pillow, integer pixels) run in the CPU tasks (`clippings.preprocess.uint8_pixels`); rescale and
normalise run on the device (`PixelNormaliser`), the same arithmetic the processor would have done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class PixelNormaliser:
    """uint8 (n, 3, H, W) pixels → the float tensor the model expects, on `device`.

    Applies the image processor's `rescale_factor` and `image_mean`/`image_std` when it would have.
    """

    def __init__(self, processor: Any, device: torch.device) -> None:
        ip = processor.image_processor
        self.device = device
        self.scale = float(ip.rescale_factor) if getattr(ip, "do_rescale", True) else None
        self.mean = self.std = None
        if getattr(ip, "do_normalize", True):
            self.mean = torch.tensor(ip.image_mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
            self.std = torch.tensor(ip.image_std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def __call__(self, pixels: np.ndarray, view: Callable[[torch.Tensor], torch.Tensor] | None = None
                 ) -> torch.Tensor:
        """view: a map of [0, 1] pixels (B, C, H, W) applied before the processor's arithmetic (a training
        view, `clippings.train.views.scan_view`)."""
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, non_blocking=True).float()
        if view is not None:
            x = view(x / 255.0) * 255.0
        if self.scale is not None:
            x = x * self.scale
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


def model_inputs(rows: dict[str, np.ndarray], normalise: PixelNormaliser, image: bool = True,
                 text: bool = True, view: Callable[[torch.Tensor], torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Model inputs of preprocessed rows (`pixels` uint8, `input_ids` padded to the model's length, `length`):
    captions trimmed to the rows' longest (padding is on the right, so trimming changes nothing); `view` as
    `PixelNormaliser.__call__`."""
    out = {}
    if image:
        out["pixel_values"] = normalise(rows["pixels"], view)
    if text:
        lengths = np.asarray(rows["length"], dtype=np.int64)
        width = max(1, int(lengths.max()))
        ids = torch.from_numpy(np.ascontiguousarray(rows["input_ids"][:, :width]))
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]).long()
        out["input_ids"] = ids.to(normalise.device)
        out["attention_mask"] = mask.to(normalise.device)
    return out
