"""CLIPPINGS supervised training: SupCon on the pooled embedding normalise(w·img + (1−w)·txt).

Batches hold k classes that the current model finds alike × m reprints each (`batches.py`), re-mined every
epoch from class prototypes. One optimizer step takes `groups_per_step` such groups, split across workers;
`DistributedLossWrapper` gathers all ranks' embeddings so the loss sees the whole step. w = 1 or 0 trains
only the image or text tower. Each epoch embeds the validation set, tunes the threshold exactly
(`clippings.link.tune.tune_threshold`) and keeps the checkpoint with the best validation ARI.

Data: the labelled train and val sets are preprocessed once, in parallel CPU tasks, into object-store blocks
(`clippings.train.pairs.LabelledStore`, uint8 pixels); workers read the rows of each planned batch by index,
so the plan order is honoured and the driver holds only block references and ~12 bytes per row.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.preprocess import describe_loaded
from clippings.train.batches import class_prototypes, hard_negative_batches
from clippings.train.fit import claim_run, code_provenance, run_path_of, train_and_save, training_settings
from clippings.train.loop import Task, Worker, gather_rows
from clippings.train.module import TwoTower, pooled
from clippings.train.pairs import LabelledStore
from clippings.train.settings import SupConSettings, model_record
from clippings.train.views import scan_view, view_seed

EMBED_CHUNK = 256


class SupConTask(Task):
    """SupCon over hard-negative batch plans, rows read from `LabelledStore`s in plan order.

    settings: as used (`groups_per_step` a multiple of the workers). train, val: the labelled sets' stores.
    """

    kind = "train"
    score_name = "val_ari"
    maximise = True

    def __init__(self, settings: SupConSettings, train: LabelledStore, val: LabelledStore) -> None:
        self.settings = settings
        self.train, self.val = train, val
        self.w = settings.im_wt
        self.m, self.k = settings.m, settings.k
        self.groups = settings.groups_per_step
        self.temperature = settings.temperature
        self._loss = None

    def module(self, clip) -> TwoTower:
        return TwoTower(clip, image=self.w > 0, text=self.w < 1, train_scale=False)

    def steps_per_epoch(self, worker: Worker) -> int:
        n_classes = int(self.train.labels.max()) + 1
        return math.ceil(math.ceil(n_classes / min(self.k, n_classes)) / self.groups)

    def embed(self, worker: Worker, raw: TwoTower, store: LabelledStore) -> np.ndarray:
        def rows(idx: np.ndarray) -> torch.Tensor:
            img, txt, _ = raw(**worker.inputs(store.rows(idx), raw.image, raw.text))
            return pooled(img, txt, self.w)

        return gather_rows(worker, rows, len(store), EMBED_CHUNK)

    def batches(self, worker: Worker, raw: TwoTower, epoch: int) -> list[np.ndarray]:
        """This rank's row indices for each step of `epoch` (plan order: re-mined hard-negative groups)."""
        # the views of an epoch depend on (seed, epoch, rank) only: a resumed run draws the same ones
        self.views = torch.Generator(device=worker.device).manual_seed(view_seed(self.settings.seed, epoch,
                                                                                 worker.rank))
        labels = self.train.labels
        with torch.no_grad():
            protos = class_prototypes(self.embed(worker, raw, self.train), labels)
        seed = self.settings.seed * 1_000_003 + epoch
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
        view = self.view if self.w > 0 and self.settings.view_p > 0 else None
        img, txt, _ = model(**worker.inputs(self.train.rows(idx), self.w > 0, self.w < 1, view))
        labels = torch.from_numpy(self.train.labels[idx]).to(worker.device)
        return self._loss(pooled(img, txt, self.w), labels)

    def view(self, pixels: torch.Tensor) -> torch.Tensor:
        """Each training image replaced by a `scan_view` of it with probability view_p (this epoch's generator)."""
        views = scan_view(pixels, self.views)
        keep = torch.rand(len(pixels), generator=self.views, device=pixels.device) >= self.settings.view_p
        return torch.where(keep.view(-1, 1, 1, 1), pixels, views)

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        from clippings.link.tune import tune_threshold

        result = tune_threshold(self.embed(worker, raw, self.val), self.val.labels)
        return {"val_ari": float(result.ari), "threshold": float(result.threshold)}


def run_values(settings: SupConSettings) -> dict[str, Any]:
    """The settings a SupCon run records and resumes only with (`clippings.train.fit.training_settings`):
    all of them, but view_p only when used, so that a run recorded before the setting existed (when every
    run trained on the images as they are) still resumes."""
    values = asdict(settings)
    if not settings.view_p:
        del values["view_p"]
    return values


def train_supcon(archive: str, val: str, out: str, *, model: str, workers: int = 1, gpu: bool = False,
                 run_dir: str | None = None, images: ImagePolicy = ARCHIVE_ONLY, overwrite: bool = False,
                 **settings: Any) -> dict[str, Any]:
    """Fine-tune `model` with SupCon on labelled `archive`, pick the epoch by ARI on labelled `val`, write `out`.

    settings: the fields of `clippings.train.settings.SupConSettings` by name (im_wt, m, k, temperature,
    groups_per_step, epochs, lr, vision_lr, text_lr, seed; their defaults, meanings and constraints there; a bad
    value is one BadInput line); groups_per_step is rounded up to a multiple of `workers`. run_dir: checkpoint
    storage (default `out + '_runs'`); re-running with the same settings resumes there, with other settings is
    refused (`clippings.train.fit.claim_run`; what counts: `training_settings`) unless `overwrite` removes the
    earlier run first. images: which `image_path` locations outside the archive folders may be read (default:
    none). Returns the final checkpoint state. Cost: one parallel decode of both sets into the object store
    (3·H·W bytes per row: 100k rows at 224 px ≈ 15 GB, spilled to disk beyond the store), then per epoch one
    embedding pass over train (re-mining) and val, plus classes·m items of forward+backward; ~15 s Ray Train
    start-up.
    """
    from clippings.model import load_model
    from clippings.raylocal import init_ray
    from clippings.train.pairs import labelled_store

    asked = SupConSettings(**settings)
    base = load_model(model)
    used = replace(asked, groups_per_step=math.ceil(asked.groups_per_step / workers) * workers)
    run_dir = run_dir or out.rstrip("/") + "_runs"
    claim_run(run_path_of(run_dir, "train"), "train",
              training_settings(base, {"archive": archive, "val": val}, images, run_values(used)), overwrite)
    init_ray()
    described = describe_loaded(model, base)
    train = labelled_store(archive, described, images)
    valset = labelled_store(val, described, images)
    if int(train.labels.max()) + 1 < 2:
        raise BadInput(f"archive {archive}: one label only; SupCon needs at least 2 reprint groups")
    meta = {"stage": "train", "base_model": model, **model_record(used), "workers": workers,
            "data": {"train": train.provenance, "val": valset.provenance}, "code": code_provenance()}
    return train_and_save(SupConTask(used, train, valset), model, base, out, workers=workers, gpu=gpu,
                          run_dir=run_dir, meta=meta)
