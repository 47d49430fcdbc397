"""CLIPPINGS supervised training: SupCon on the pooled embedding normalise(w·img + (1−w)·txt).

Batches hold k classes that the current model finds alike × m reprints each (`batches.py`), re-mined every
epoch from class prototypes. One optimizer step takes `groups_per_step` such groups, split across workers;
`DistributedLossWrapper` gathers all ranks' embeddings so the loss sees the whole step. w = 1 or 0 trains
only the image or text tower. Each epoch embeds the validation set, tunes the threshold exactly
(`clippings.link.tune.tune_threshold`) and keeps the checkpoint with the best validation ARI.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from clippings.archive import ARCHIVE_ONLY, ImagePolicy
from clippings.errors import BadInput
from clippings.train.batches import class_prototypes, hard_negative_batches
from clippings.train.common import (
    Task,
    TwoTower,
    Worker,
    code_provenance,
    gather_rows,
    load_pairs,
    pooled,
    train_and_save,
)

EMBED_CHUNK = 256


class SupConTask(Task):
    kind = "train"
    score_name = "val_ari"
    maximise = True

    def __init__(self, config: dict[str, Any]) -> None:
        self.w = float(config["im_wt"])
        self.m, self.k = int(config["m"]), int(config["k"])
        self.groups = int(config["groups_per_step"])
        self.temperature = float(config["temperature"])
        self._loss = None

    def module(self, clip) -> TwoTower:
        return TwoTower(clip, image=self.w > 0, text=self.w < 1, train_scale=False)

    def steps_per_epoch(self, worker: Worker) -> int:
        n_classes = int(worker.data["labels"].max()) + 1
        return math.ceil(math.ceil(n_classes / min(self.k, n_classes)) / self.groups)

    def embed(self, worker: Worker, raw: TwoTower, n: int, prefix: str) -> np.ndarray:
        def rows(idx: np.ndarray) -> torch.Tensor:
            img, txt, _ = raw(**worker.inputs(idx, raw.image, raw.text, prefix))
            return pooled(img, txt, self.w)

        return gather_rows(worker, rows, n, EMBED_CHUNK)

    def plan(self, worker: Worker, raw: TwoTower, epoch: int) -> list[np.ndarray]:
        labels = worker.data["labels"]
        with torch.no_grad():
            protos = class_prototypes(self.embed(worker, raw, len(labels), ""), labels)
        seed = int(worker.config["seed"]) * 1_000_003 + epoch
        batches = hard_negative_batches(labels, protos, self.m, self.k, seed)
        total = self.steps_per_epoch(worker) * self.groups
        batches = [batches[i % len(batches)] for i in range(total)]  # pad by repeating: equal steps on ranks
        per_rank = self.groups // worker.world
        return [np.concatenate(batches[s + worker.rank * per_rank : s + (worker.rank + 1) * per_rank])
                for s in range(0, total, self.groups)]

    def loss(self, worker: Worker, model, idx: np.ndarray) -> torch.Tensor:
        if self._loss is None:
            from pytorch_metric_learning.losses import SupConLoss
            from pytorch_metric_learning.utils.distributed import DistributedLossWrapper

            loss = SupConLoss(temperature=self.temperature)
            self._loss = DistributedLossWrapper(loss) if worker.world > 1 else loss
        img, txt, _ = model(**worker.inputs(idx, self.w > 0, self.w < 1))
        labels = torch.from_numpy(worker.data["labels"][idx]).to(worker.device)
        return self._loss(pooled(img, txt, self.w), labels)

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        from clippings.link.tune import tune_threshold

        labels = worker.data["val_labels"]
        result = tune_threshold(self.embed(worker, raw, len(labels), "val_"), labels)
        return {"val_ari": float(result.ari), "threshold": float(result.threshold)}


def supcon_loop(config: dict[str, Any]) -> None:
    """Ray Train worker entry (module level, so Ray can pickle it)."""
    from clippings.train.common import run_worker

    run_worker(config, SupConTask(config))


def train_supcon(archive: str, val: str, out: str, *, model: str, im_wt: float = 0.5, m: int = 3, k: int = 3,
                 temperature: float = 0.1, groups_per_step: int = 8, workers: int = 1, gpu: bool = False,
                 epochs: int = 10, lr: float = 5e-4, vision_lr: float | None = None, text_lr: float | None = None,
                 seed: int = 0, run_dir: str | None = None,
                 images: ImagePolicy = ARCHIVE_ONLY) -> dict[str, Any]:
    """Fine-tune `model` with SupCon on labelled `archive`, pick the epoch by ARI on labelled `val`, write `out`.

    im_wt: w of the pooled embedding (1 image only, 0 text only). m, k: items per class, classes per group.
    groups_per_step: groups of k·m items per optimizer step (rounded up to a multiple of `workers`).
    vision_lr, text_lr: the encoders' peak rates (None: `lr`; 0 locks the tower; a pretrained text encoder
    wants ~2e-5). run_dir: checkpoint storage (default `out + '_runs'`); re-running resumes there. images: which
    `image_path` locations outside the archive folders may be read (default: none). Returns the final checkpoint state. Cost: per epoch, one embedding pass over train (re-mining) and val,
    plus classes·m items of forward+backward; ~15 s Ray Train start-up.
    """
    from clippings.model import load_model

    base = load_model(model)
    train = load_pairs(archive, base, labelled=True, images=images)
    valset = load_pairs(val, base, labelled=True, images=images)
    if int(train.labels.max()) + 1 < 2:
        raise BadInput(f"archive {archive}: one label only; SupCon needs at least 2 reprint groups")
    groups = math.ceil(groups_per_step / workers) * workers
    data = {**train.arrays(), **{"val_" + key: v for key, v in valset.arrays().items()}}
    config = {"model": model, "epochs": epochs, "lr": lr, "vision_lr": vision_lr, "text_lr": text_lr, "seed": seed,
              "im_wt": im_wt, "m": m, "k": k,
              "temperature": temperature, "groups_per_step": groups}
    meta = {"stage": "train", "im_wt": im_wt, "base_model": model, "m": m, "k": k, "temperature": temperature,
            "groups_per_step": groups, "lr": lr, "vision_lr": vision_lr, "text_lr": text_lr, "seed": seed,
            "workers": workers,
            "data": {"train": train.provenance, "val": valset.provenance}, "code": code_provenance()}
    return train_and_save(supcon_loop, "train", config, data, base, out, workers=workers, gpu=gpu,
                          run_dir=run_dir or out.rstrip("/") + "_runs", meta=meta)
