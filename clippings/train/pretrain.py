"""Continued language-image pretraining: symmetric CLIP InfoNCE with the learned temperature.

Runs on the archive's unlabelled pairs (exact-duplicate captions removed) under Ray Train. With several
workers the global batch is split across ranks and every rank's embeddings are gathered (with gradient
back to their own rank), so each rank sees all B negatives and the update equals one worker's on the same
global batch (up to float summation order). A held-out slice gives a validation loss each epoch; the
checkpoint with the lowest one is written out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from clippings.archive import ARCHIVE_ONLY, ImagePolicy
from clippings.errors import BadInput
from clippings.train.common import (
    Task,
    TwoTower,
    Worker,
    all_gather_with_grad,
    code_provenance,
    gather_rows,
    load_pairs,
    train_and_save,
)

VAL_FRACTION = 0.1
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on exp(logit_scale)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows of unit image and text embeddings (B, d) at `scale`."""
    logits = scale.clamp(max=MAX_LOGIT_SCALE) * img @ txt.T
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                  + torch.nn.functional.cross_entropy(logits.T, target))


class PretrainTask(Task):
    kind = "pretrain"
    score_name = "val_loss"
    maximise = False

    def module(self, clip) -> TwoTower:
        return TwoTower(clip, image=True, text=True, train_scale=True)

    def steps_per_epoch(self, worker: Worker) -> int:
        return len(worker.data["train_idx"]) // int(worker.config["batch_size"])

    def plan(self, worker: Worker, raw: TwoTower, epoch: int) -> list[np.ndarray]:
        batch = int(worker.config["batch_size"])
        local = batch // worker.world
        rng = np.random.default_rng([int(worker.config["seed"]), epoch])
        order = worker.data["train_idx"][rng.permutation(len(worker.data["train_idx"]))]
        steps = []
        for s in range(self.steps_per_epoch(worker)):
            step = order[s * batch : (s + 1) * batch]
            steps.append(step[worker.rank * local : (worker.rank + 1) * local])
        return steps

    def loss(self, worker: Worker, model, idx: np.ndarray) -> torch.Tensor:
        img, txt, scale = model(**worker.inputs(idx))
        return clip_loss(all_gather_with_grad(img, worker), all_gather_with_grad(txt, worker), scale)

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        val = worker.data["val_idx"]
        batch = int(worker.config["batch_size"])

        def both(rows: np.ndarray) -> torch.Tensor:
            img, txt, _ = raw(**worker.inputs(val[rows]))
            return torch.cat([img, txt], dim=1)

        emb = torch.from_numpy(gather_rows(worker, both, len(val), batch))
        half = emb.shape[1] // 2
        scale = raw.clip.logit_scale.exp().detach().cpu()
        losses = [float(clip_loss(emb[i : i + batch, :half], emb[i : i + batch, half:], scale)) * len(emb[i : i + batch])
                  for i in range(0, len(emb), batch)]
        return {"val_loss": sum(losses) / len(emb), "logit_scale": float(scale)}


def pretrain_loop(config: dict[str, Any]) -> None:
    """Ray Train worker entry (module level, so Ray can pickle it)."""
    from clippings.train.common import run_worker

    run_worker(config, PretrainTask())


def pretrain(archive: str, out: str, *, model: str = "tiny", workers: int = 1, gpu: bool = False, epochs: int = 8,
             batch_size: int = 64, lr: float = 1e-3, vision_lr: float | None = None,
             text_lr: float | None = None, seed: int = 0, run_dir: str | None = None,
             images: ImagePolicy = ARCHIVE_ONLY) -> dict[str, Any]:
    """Continue CLIP pretraining of `model` on `archive`'s pairs and write the best model to `out`.

    archive: archive folder (labels ignored). batch_size: global batch (split across workers; capped at the
    number of training pairs and rounded down to a multiple of `workers`). vision_lr, text_lr: the encoders'
    peak rates (None: `lr`; 0 locks that tower and its head, e.g. `text_lr=0` for LiT-style pretraining of a
    pretrained text tower). run_dir: checkpoint storage
    (default `out + '_runs'`); re-running resumes there. images: which `image_path` locations outside the
    archive folder may be read (default: none). Returns the final checkpoint state.
    Cost: archive decode once (driver), ~15 s Ray Train start-up, then epochs × pairs forward+backward.
    """
    from clippings.model import load_model

    base = load_model(model)
    pairs = load_pairs(archive, base, labelled=False, dedupe_captions=True, images=images)
    n = len(pairs.ids)
    n_val = max(1, int(round(n * VAL_FRACTION))) if n >= 20 else 0
    if n - n_val < 2 * workers or n_val == 0:
        raise BadInput(f"archive {archive}: {n} distinct image-caption pairs; pretraining needs at least "
                       f"{max(20, 2 * workers + 2)}: give a larger archive")
    order = np.random.default_rng(seed).permutation(n)
    data = {**pairs.arrays(), "val_idx": np.sort(order[:n_val]), "train_idx": np.sort(order[n_val:])}
    batch = max(2 * workers, min(batch_size, n - n_val)) // workers * workers
    config = {"model": model, "epochs": epochs, "batch_size": batch, "lr": lr, "vision_lr": vision_lr,
              "text_lr": text_lr, "seed": seed}
    meta = {"stage": "pretrain", "base_model": model, "batch_size": batch, "lr": lr, "vision_lr": vision_lr,
            "text_lr": text_lr, "seed": seed,
            "workers": workers, "data": {"archive": pairs.provenance, "val_rows": n_val},
            "code": code_provenance()}
    return train_and_save(pretrain_loop, "pretrain", config, data, base, out, workers=workers, gpu=gpu,
                          run_dir=run_dir or out.rstrip("/") + "_runs", meta=meta)

