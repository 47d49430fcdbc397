"""The epoch loop every Ray Train worker runs, and the collectives both objectives use.

Both objectives (CLIP pretraining and SupCon) run `run_worker` under Ray Train `TorchTrainer` and differ only
in a `Task` (its settings, where rows come from, the batches of an epoch, the loss, validation), which the
driver makes and ships to every worker with the `Run` (`train_loop`). Checkpoints are reported with
`ray.train.report` after every epoch (`clippings.train.checkpoints`), so none is lost.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from clippings.storage import is_remote
from clippings.train.checkpoints import (
    BEST_WEIGHTS,
    CHECKPOINT_PREFIX,
    LATEST_WEIGHTS,
    OPTIM_FILE,
    read_state,
    read_weights,
    state_dict_cpu,
    write_checkpoint,
    write_metrics_csv,
)
from clippings.train.module import TwoTower
from clippings.train.pixels import PixelNormaliser, model_inputs
from clippings.train.settings import TrainSettings

WARMUP = 0.1  # of the run's steps: the learning rate's linear warm-up (`warmup_cosine`)


@dataclass(frozen=True)
class Run:
    """What the driver tells every worker about the run besides its task: the start `model` (a `--model`
    value, loaded on each worker), the run folder `path` (checkpoints, metrics.csv, quarantine), each
    worker's CPU grant `cpus` (sizes its thread pools) and the progress channel `board` rank 0 posts to
    (clippings.progress.Channel; None: no live line)."""

    model: str
    path: str
    cpus: float
    board: Any = None


@dataclass
class Worker:
    """What a training worker knows about itself: rank, world size, device, the `Run`, the loaded start model
    (`clippings.model.LoadedModel`) and its pixel normaliser."""

    rank: int
    world: int
    device: torch.device
    run: Run
    loaded: Any = None
    normalise: PixelNormaliser | None = None

    def inputs(self, rows: dict[str, np.ndarray], image: bool = True, text: bool = True,
               view: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Model inputs on this worker's device of preprocessed rows (`clippings.train.pixels.model_inputs`)."""
        return model_inputs(rows, self.normalise, image, text, view)

    def agree(self, ok: bool) -> bool:
        """True when `ok` holds on every rank (an all-reduce of min; every rank must call it)."""
        if self.world == 1:
            return ok
        flag = torch.tensor([1 if ok else 0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag.item())

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)


class Task:
    """One training objective, made on the driver with its settings and data references (small: pickled to
    every worker). Subclasses define the model view, the batches, the loss and validation."""

    kind = "task"
    score_name = "score"  # the validation metric that picks the best checkpoint
    maximise = True
    settings: TrainSettings  # the schedule, rates and seed the epoch loop reads

    def module(self, clip) -> TwoTower:
        raise NotImplementedError

    def start(self, worker: Worker) -> None:
        """Once per worker, after the model is loaded: open data sources."""

    def steps_per_epoch(self, worker: Worker) -> int:
        """Planned steps per epoch (the learning-rate schedule's unit)."""
        raise NotImplementedError

    def batches(self, worker: Worker, raw: TwoTower, epoch: int) -> Iterable[Any]:
        """This rank's batches of `epoch`, the same number on every rank."""
        raise NotImplementedError

    def rows(self, batch: Any) -> int:
        """Rows of a batch on this rank."""
        return len(batch)

    def loss(self, worker: Worker, model, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        """Validation metrics; must include `score_name`."""
        raise NotImplementedError


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker entry (module level, so Ray can pickle it): `config["shipped"]` is an object-store
    reference to `{"run": Run, "task": Task}` (`clippings.train.fit.fit`)."""
    import ray

    shipped = ray.get(config["shipped"])
    run_worker(shipped["run"], shipped["task"])


def run_worker(run: Run, task: Task) -> None:
    """The epoch loop every Ray Train worker runs: restore, train, validate, checkpoint each epoch."""
    import ray
    import ray.train
    import ray.train.torch

    from clippings.model import load_model
    from clippings.progress import Poster
    from clippings.raylocal import size_thread_pools

    settings = task.settings
    ctx = ray.train.get_context()
    size_thread_pools(run.cpus)
    poster = Poster(run.board if ctx.get_world_rank() == 0 else None)  # rank 0 speaks for all
    torch.manual_seed(settings.seed)
    worker = Worker(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device(), run)
    run_path = run.path
    if not is_remote(run_path):  # lets tests and operators find (and kill) workers
        os.makedirs(os.path.join(run_path, "pids"), exist_ok=True)
        with open(os.path.join(run_path, "pids", f"rank-{worker.rank}.pid"), "w") as f:
            f.write(str(os.getpid()))

    worker.loaded = load_model(run.model)
    worker.normalise = PixelNormaliser(worker.loaded.processor, worker.device)
    clip = worker.loaded.model
    raw = task.module(clip).to(worker.device)
    task.start(worker)
    groups = raw.param_groups(settings.lr, settings.vision_lr, settings.text_lr)
    optimizer = torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3)
    epochs = settings.epochs
    total = task.steps_per_epoch(worker) * epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, WARMUP))
    state: dict[str, Any] = {"kind": task.kind, "epoch": 0, "best": None, "history": []}
    best = state_dict_cpu(clip)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = read_state(folder, task.kind)
            clip.load_state_dict(read_weights(folder, LATEST_WEIGHTS, best))
            best = read_weights(folder, BEST_WEIGHTS, best)
            opt = torch.load(os.path.join(folder, OPTIM_FILE), weights_only=True, map_location="cpu")
            optimizer.load_state_dict(opt["optimizer"])
            scheduler.load_state_dict(opt["scheduler"])
        poster.note(f"{task.kind}: resuming from the checkpoint of epoch {state['epoch']}")
    start_epoch = state["epoch"]
    model = raw
    if worker.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            raw, device_ids=[worker.device.index] if worker.device.type == "cuda" else None)

    last = ""  # the previous epoch's metrics, shown on the progress line
    for epoch in range(start_epoch + 1, epochs + 1):
        raw.eval()
        steps = task.batches(worker, raw, epoch)  # SupCon re-mines here; a stream starts lazily
        began = time.perf_counter()
        planned = task.steps_per_epoch(worker)
        raw.train()
        losses, samples = [], 0
        status = f"epoch {epoch}/{epochs}" + (f", last epoch {last}" if last else "")
        for i, batch in enumerate(steps):
            with worker.autocast():
                loss = task.loss(worker, model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            samples += task.rows(batch) * worker.world
            per_step = samples / (i + 1)
            poster.progress((epoch - 1) * planned * per_step + samples,
                            epochs * planned * per_step, status)
        seconds = time.perf_counter() - began
        raw.eval()
        with torch.no_grad():
            metrics = task.validate(worker, raw)
        row = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"), **metrics,
               "samples_per_s": samples / max(seconds, 1e-9), "train_seconds": seconds,
               "attempt_start_epoch": start_epoch, "lr": scheduler.get_last_lr()[0]}
        state["history"].append(row)
        score, old = metrics[task.score_name], (state["best"] or {}).get(task.score_name)
        if old is None or (score > old if task.maximise else score < old):
            state["best"] = {"epoch": epoch, **metrics}
            best = state_dict_cpu(clip)
        state["epoch"] = epoch
        report = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        last = ", ".join(f"{k} {v:.4f}" for k, v in (("loss", row["loss"]), *metrics.items()))
        poster.detail(f"{task.kind} epoch {epoch}/{epochs}: {last}, {row['samples_per_s']:.1f} samples/s")
        if worker.rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                write_checkpoint(folder, clip, best, optimizer, scheduler, state)
                ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(folder),
                                 checkpoint_dir_name=f"{CHECKPOINT_PREFIX}{epoch:04d}")
            write_metrics_csv(run_path, state["history"])
        else:
            ray.train.report(report)


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR factor: linear warm-up over the first `warmup_fraction` of steps, then cosine decay to 0."""
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_)))

    return factor


def gather_rows(worker: Worker, fn: Callable[[np.ndarray], torch.Tensor], n: int, chunk: int) -> np.ndarray:
    """Apply `fn` to rows 0..n-1 split across ranks (chunks of `chunk`) and return all results on every rank.

    Cost: n/world rows of forward work per rank and one all_gather of (n/world, d) float32.
    """
    shards = np.array_split(np.arange(n), worker.world)
    mine = shards[worker.rank]
    parts = [fn(mine[i : i + chunk]).float() for i in range(0, len(mine), chunk)]
    local = torch.cat(parts) if parts else None
    if worker.world == 1:
        return local.cpu().numpy()
    width = int(local.shape[1]) if local is not None else _probe_width(worker, fn)
    longest = max(len(s) for s in shards)
    padded = torch.zeros(longest, width, device=worker.device)
    if local is not None:
        padded[: len(local)] = local
    gathered = [torch.zeros_like(padded) for _ in range(worker.world)]
    torch.distributed.all_gather(gathered, padded)
    return torch.cat([g[: len(s)] for g, s in zip(gathered, shards, strict=True)]).cpu().numpy()


def _probe_width(worker: Worker, fn: Callable[[np.ndarray], torch.Tensor]) -> int:
    return int(fn(np.arange(1)).shape[1])


def gather_indexed(worker: Worker, index: np.ndarray, values: torch.Tensor, width: int) -> torch.Tensor:
    """Every rank's (index, values (n_r, width)) rows gathered on every rank, in ascending index order
    (indices are disjoint across ranks). Cost: one all_gather of (max n_r, width + 1) float64 per rank."""
    local = torch.cat([torch.as_tensor(index, dtype=torch.float64, device=worker.device)[:, None],
                       values.detach().to(torch.float64).reshape(len(index), width)], dim=1)
    if worker.world > 1:
        count = torch.tensor([len(index)], device=worker.device)
        counts = [torch.zeros_like(count) for _ in range(worker.world)]
        torch.distributed.all_gather(counts, count)
        longest = int(max(int(c) for c in counts))
        padded = torch.zeros(longest, width + 1, dtype=torch.float64, device=worker.device)
        padded[: len(local)] = local
        parts = [torch.zeros_like(padded) for _ in range(worker.world)]
        torch.distributed.all_gather(parts, padded)
        local = torch.cat([p[: int(c)] for p, c in zip(parts, counts, strict=True)])
    return local[torch.argsort(local[:, 0])][:, 1:].float()


def all_gather_with_grad(x: torch.Tensor, worker: Worker) -> torch.Tensor:
    """Concatenate every rank's `x` in rank order, gradients flowing back to each rank's own rows."""
    if worker.world == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated name; the replacement has no autograd
        return torch.cat(dist_fn.all_gather(x.contiguous()))


