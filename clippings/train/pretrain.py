"""Continued language-image pretraining: symmetric CLIP InfoNCE with the learned temperature.

Runs on the archive's unlabelled pairs (exact-duplicate captions removed) under Ray Train, streamed from
the archive through Ray Data (`clippings.train.pairs`): the driver never holds pixels. With several
workers the global batch is split across ranks and every rank's embeddings are gathered (with gradient
back to their own rank), so each rank sees all B negatives and the update equals one worker's on the same
global batch (up to float summation order; batches are the same for every worker count dividing LANES).
With a view weight λ > 0 the loss adds λ × an image-image InfoNCE between each image and a re-scanned view
of it (clippings.train.views), which keeps the image tower telling prints apart rather than only repeating
their captions. A CLIP weight below 1 scales the CLIP term down; at 0 (with λ > 0 and the text tower locked)
the image tower learns from the views alone and stays an independent view of the print beside a pretrained
text tower, which is what the multimodal embedding needs from it
(docs/training.md#keeping-the-image-towers-own-view).
A held-out slice gives a validation loss each epoch (the same sum, fixed views); the checkpoint with the
lowest one is written out.
Rows whose image cannot be read or decoded are quarantined (`OUT/_quarantine/`, counted in clippings.json).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from clippings.errors import BadInput
from clippings.image_paths import ARCHIVE_ONLY, ImagePolicy
from clippings.preprocess import describe_loaded
from clippings.train.fit import claim_run, code_provenance, run_path_of, train_and_save, training_settings
from clippings.train.loop import Task, Worker, all_gather_with_grad, gather_indexed
from clippings.train.module import TwoTower
from clippings.train.pairs import (
    DATA_CPUS,
    SHUFFLE_BUFFER,
    DecodedCache,
    StreamPlan,
    lanes_for,
    pretraining_plan,
)
from clippings.train.settings import PretrainSettings, model_record
from clippings.train.views import VIEW_TEMPERATURE, reprint_view, view_seed

VAL_FRACTION = 0.1
QUARANTINE_PART = "part-00000.parquet"
MAX_VAL = 5000  # held-out pairs at most: a validation loss needs no more, and each worker keeps its share
LANES = 4  # batches are the same for every worker count dividing this (clippings.train.pairs)
DATA_SHARE = 0.5  # of the cluster's CPUs, left to the decoding tasks that feed the workers
CACHE_BYTES = 1 << 30  # decoded rows a worker keeps after its first epoch (`DecodedCache`): ~350k pairs at 32 px
STAGE = "pretrain"
MAX_LOGIT_SCALE = 100.0  # CLIP's clamp on exp(logit_scale)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over matching rows of unit image and text embeddings (B, d) at `scale`."""
    logits = scale.clamp(max=MAX_LOGIT_SCALE) * img @ txt.T
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target)
                  + torch.nn.functional.cross_entropy(logits.T, target))


class PretrainTask(Task):
    """CLIP InfoNCE over global batches streamed from the archive (`clippings.train.pairs.RankStream`).

    settings: as used (`batch_size` the global batch the plan allows, a multiple of its lanes). plan: the
    archive's `StreamPlan`. images: which image paths outside the archive folder may be read.
    """

    kind = "pretrain"
    score_name = "val_loss"
    maximise = False

    def __init__(self, settings: PretrainSettings, plan: StreamPlan, images: ImagePolicy) -> None:
        self.settings = settings
        self.plan = plan
        self.images = images
        self.per_lane = settings.batch_size // plan.lanes
        self.stream = None
        self.view_weight = settings.view_weight
        self.clip_weight = settings.clip_weight

    def module(self, clip) -> TwoTower:
        # without the CLIP term the temperature has nothing to learn: frozen, not decayed
        return TwoTower(clip, image=True, text=True, train_scale=self.clip_weight > 0)

    def start(self, worker: Worker) -> None:
        from ray.data import DataContext

        context = DataContext.get_current()  # this worker's process only
        context.execution_options.preserve_order = True  # the lanes' order must not depend on timing
        context.enable_progress_bars = False
        self.model = describe_loaded(worker.run.model, worker.loaded)
        per_rank = self.plan.lanes // worker.world
        self.lanes = list(range(worker.rank * per_rank, (worker.rank + 1) * per_rank))
        self.cache = DecodedCache(CACHE_BYTES)

    def steps_per_epoch(self, worker: Worker) -> int:
        return min(self.plan.lane_rows) // self.per_lane

    def batches(self, worker: Worker, raw: TwoTower, epoch: int):
        from clippings.train.pairs import RankStream, part_order, rank_dataset, stack, stream_rows

        seed = self.settings.seed
        if self.cache.complete:
            entries = self.cache.replay(part_order(len(self.plan.parts), seed, epoch))
        else:
            dataset = rank_dataset(self.plan, self.model, self.images, rank=worker.rank, world=worker.world,
                                   seed=seed, epoch=epoch, cpus=DATA_CPUS)
            entries = self.cache.record(stream_rows(dataset))
        # the views of an epoch depend on (seed, epoch, rank) only: a resumed run draws the same ones
        self.views = torch.Generator(device=worker.device).manual_seed(
            view_seed(seed, epoch, worker.rank))
        self.stream = RankStream(entries, self.lanes, SHUFFLE_BUFFER, seed, epoch)
        for rows in self.stream.steps(self.per_lane, worker.agree):
            yield stack(rows)

    def rows(self, batch: dict[str, np.ndarray]) -> int:
        return len(batch["length"])

    def loss(self, worker: Worker, model, batch: dict[str, np.ndarray]) -> torch.Tensor:
        # without the CLIP term the (locked, eval-mode) text tower is not run at all: the captions' forward
        # is most of a step's cost with a pretrained text encoder
        inputs = worker.inputs(batch, text=self.clip_weight > 0)
        weight = self.view_weight
        pixels = inputs["pixel_values"]
        b = len(pixels)
        if weight:  # one forward over the images and their views (DDP hooks a single forward per step)
            inputs["pixel_values"] = torch.cat([pixels, reprint_view(pixels, self.views)])
        img, txt, scale = model(**inputs)
        images = all_gather_with_grad(img[:b], worker)
        terms = []
        if self.clip_weight:
            terms.append(self.clip_weight * clip_loss(images, all_gather_with_grad(txt, worker), scale))
        if weight:
            terms.append(weight * view_loss(images, all_gather_with_grad(img[b:], worker)))
        return sum(terms)

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        """Validation loss over all held-out pairs in index order (batches of B), whatever rank held them,
        with views drawn from the run's seed alone; the epoch's quarantined rows are gathered and written
        by rank 0."""
        from clippings.model import embedding_dim
        from clippings.train.pairs import stack

        batch = self.settings.batch_size
        weight = self.view_weight
        views = torch.Generator(device=worker.device).manual_seed(self.settings.seed)
        keys = sorted(self.stream.val)
        dim = embedding_dim(raw.clip)
        width = (3 if weight else 2) * dim
        parts = []
        for i in range(0, len(keys), batch):
            inputs = worker.inputs(stack([self.stream.val[k] for k in keys[i : i + batch]]))
            img, txt, _ = raw(**inputs)
            if weight:
                img = torch.cat([img, raw(pixel_values=reprint_view(inputs["pixel_values"], views))[0]], dim=1)
            parts.append(torch.cat([img[:, :dim], txt, img[:, dim:]], dim=1))
        local = torch.cat(parts) if parts else torch.zeros(0, width, device=worker.device)
        emb = gather_indexed(worker, np.asarray(keys, np.int64), local, width).cpu()
        scale = raw.clip.logit_scale.exp().detach().cpu()
        clip_sum = view_sum = 0.0
        for i in range(0, len(emb), batch):
            part = emb[i : i + batch]
            clip_sum += float(clip_loss(part[:, :dim], part[:, dim : 2 * dim], scale)) * len(part)
            if weight:
                view_sum += float(view_loss(part[:, :dim], part[:, 2 * dim :])) * len(part)
        rows = max(1, len(emb))
        bad = self._gather_bad(worker)
        metrics = {"val_loss": (self.clip_weight * clip_sum + weight * view_sum) / rows, "logit_scale": float(scale),
                   "quarantined": len(bad)}
        if weight:
            metrics.update(val_clip_loss=clip_sum / rows, val_view_loss=view_sum / rows)
        return metrics

    def _gather_bad(self, worker: Worker) -> list[tuple[str, str]]:
        from clippings.archive import quarantine_table, write_quarantine

        bad = list(self.stream.bad)
        if worker.world > 1:
            every: list = [None] * worker.world
            torch.distributed.all_gather_object(every, bad)
            bad = [row for rows in every for row in rows]
        bad.sort()
        if worker.rank == 0 and bad:
            write_quarantine(worker.run.path, quarantine_table([b[0] for b in bad], STAGE,
                                                                         [b[1] for b in bad]), QUARANTINE_PART)
        return bad


def view_loss(img: torch.Tensor, view: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between unit image embeddings and their views' (B, d), at 1/VIEW_TEMPERATURE."""
    return clip_loss(img, view, torch.tensor(1.0 / VIEW_TEMPERATURE, device=img.device))


def pretrain(archive: str, out: str, *, model: str = "tiny", workers: int = 1, gpu: bool = False,
             run_dir: str | None = None, images: ImagePolicy = ARCHIVE_ONLY, overwrite: bool = False,
             **settings: Any) -> dict[str, Any]:
    """Continue CLIP pretraining of `model` on `archive`'s pairs and write the best model to `out`.

    archive: archive folder (labels ignored). settings: the fields of `PretrainSettings`
    (`clippings.train.settings`) by name (epochs, batch_size, lr, vision_lr, text_lr, view_weight, clip_weight,
    seed; their defaults, meanings and constraints there; a bad value is one BadInput line). batch_size is the
    global batch, split across workers, capped at the number of training pairs and rounded down to a multiple of
    the lane count, `lanes_for(workers, LANES)`; `text_lr=0` is LiT-style pretraining of a pretrained text
    tower; with `clip_weight=0` the locked text tower and the temperature stay as they were (see the module
    docstring). run_dir: checkpoint storage (default `out + '_runs'`); re-running with the same settings resumes
    there, with other settings is refused (`clippings.train.fit.claim_run`; what counts: `training_settings`)
    unless `overwrite` removes the earlier run first. images: which `image_path` locations outside the archive
    folder may be read (default: none). Returns the final checkpoint state. Cost: the archive's light columns on
    the driver (~110 bytes per row), ~15 s Ray Train start-up, then per epoch pairs × forward+backward, and one
    decode of every pair in CPU tasks beside the workers: in the first epoch only while a worker's share of
    decoded pairs fits CACHE_BYTES, every epoch otherwise.
    """
    from clippings.archive import read_quarantine, write_quarantine
    from clippings.model import load_model
    from clippings.model_meta import update_clippings_meta

    asked = PretrainSettings(**settings)
    base = load_model(model)
    lanes = lanes_for(workers, LANES)
    run_dir = run_dir or out.rstrip("/") + "_runs"
    # batch_size as asked: the batch used follows from it, the lanes and the archive (all recorded)
    values = {**asdict(asked), "lanes": lanes}
    claim_run(run_path_of(run_dir, STAGE), STAGE, training_settings(base, {"archive": archive}, images, values),
              overwrite)
    plan = pretraining_plan(archive, lanes=lanes, seed=asked.seed, val_fraction=VAL_FRACTION, max_val=MAX_VAL)
    need = max(2 * workers, lanes)
    if plan.n_train < need or plan.n_val == 0:
        raise BadInput(f"archive {archive}: {plan.n_train + plan.n_val} distinct image-caption pairs "
                       f"({plan.n_train} to train on, {plan.n_val} held out); pretraining needs at least {need} "
                       "to train on and 1 held out: give a larger archive")
    used = replace(asked, batch_size=max(lanes, min(asked.batch_size, plan.n_train)) // lanes * lanes)
    meta = {"stage": "pretrain", "base_model": model, **model_record(used), "lanes": lanes, "workers": workers,
            "data": {"archive": plan.provenance, "val_rows": plan.n_val}, "code": code_provenance()}
    state = train_and_save(PretrainTask(used, plan, images), model, base, out, workers=workers, gpu=gpu,
                           run_dir=run_dir, meta=meta, data_share=DATA_SHARE)
    quarantine = read_quarantine(run_path_of(run_dir, "pretrain"))
    write_quarantine(out, quarantine, QUARANTINE_PART)
    used = plan.provenance["rows"] - plan.duplicates - quarantine.num_rows
    update_clippings_meta(out, data={"archive": {**plan.provenance, "rows_used": used,
                                                 "quarantined": quarantine.num_rows}, "val_rows": plan.n_val})
    return state
