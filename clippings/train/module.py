"""The two-tower module Ray Train's DDP wraps, and the pooled embedding both loops train.

Kept apart from the loops so `clippings.towers` and tests can build one without Ray Train.
"""

from __future__ import annotations

from typing import Any

import torch


class TwoTower(torch.nn.Module):
    """A two-tower model (CLIP or dual encoder) behind one `forward`, so DDP syncs gradients (it only hooks
    `forward`).

    Returns (unit image embeddings or None, unit text embeddings or None, exp(logit_scale)). A tower that
    is switched off is frozen and never run (w = 0 or 1 trains only the other tower).
    """

    def __init__(self, clip, image: bool = True, text: bool = True, train_scale: bool = True) -> None:
        super().__init__()
        self.clip = clip
        self.image, self.text = image, text
        for prefix, on in (("vision_model.", image), ("visual_projection.", image),
                           ("text_model.", text), ("text_projection.", text), ("logit_scale", train_scale)):
            for name, p in clip.named_parameters():
                if name.startswith(prefix):
                    p.requires_grad_(on)

    def forward(self, pixel_values: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None):
        from clippings.model import image_features, text_features

        img = txt = None
        if self.image and pixel_values is not None:
            img = torch.nn.functional.normalize(image_features(self.clip, pixel_values).float(), dim=-1)
        if self.text and input_ids is not None:
            txt = torch.nn.functional.normalize(
                text_features(self.clip, input_ids, attention_mask).float(), dim=-1)
        return img, txt, self.clip.logit_scale.exp()

    def param_groups(self, lr: float, vision_lr: float | None, text_lr: float | None) -> list[dict[str, Any]]:
        """Trainable parameters as AdamW groups: encoders at their own rates (a pretrained encoder wants a
        far lower one than fresh projection heads), everything else at `lr`. An encoder at rate 0 is locked
        with its projection head: frozen and left out of the backward pass, so that tower's embeddings do not
        move at all (LiT-style pretraining: the image tower learns to meet a locked pretrained text tower,
        which keeps what it knows)."""
        rates = {"vision_model": vision_lr, "text_model": text_lr}
        heads = {"visual_projection": "vision_model", "text_projection": "text_model"}
        self.locked = {tower for tower, rate in rates.items() if rate == 0}
        groups: dict[float, list[torch.nn.Parameter]] = {}
        for name, p in self.clip.named_parameters():
            part = name.split(".")[0]
            if part in self.locked or heads.get(part) in self.locked:
                p.requires_grad_(False)
            elif p.requires_grad:
                rate = rates.get(part)
                groups.setdefault(lr if rate is None else rate, []).append(p)
        self.train(self.training)
        return [{"params": params, "lr": rate} for rate, params in groups.items()]

    def train(self, mode: bool = True) -> TwoTower:
        """Train mode, except that a locked encoder stays in eval mode (no dropout: it is a fixed target)."""
        super().train(mode)
        for tower in getattr(self, "locked", ()):
            getattr(self.clip, tower).eval()
        return self


def pooled(img: torch.Tensor | None, txt: torch.Tensor | None, w: float) -> torch.Tensor:
    """normalise(w·img + (1−w)·txt); w = 1 or 0 uses one tower only."""
    if txt is None:
        return img
    if img is None:
        return txt
    return torch.nn.functional.normalize(w * img + (1 - w) * txt, dim=-1)


