"""Shared pieces of the training loops: archive → tensors, the two-tower module, checkpoints, Ray Train.

Both loops (CLIP pretraining and SupCon) run the same epoch loop under Ray Train `TorchTrainer` and differ
only in a `Task` (batch plan, loss, validation). The archive is read, decoded and preprocessed once on the
driver into numpy arrays put in the object store, so workers share them without copies (this path is for
training sets that fit in RAM: 32 px images take 12 KB each, 224 px 600 KB).

Checkpoints (one folder per epoch, reported with `ray.train.report` after every epoch so none is lost):
`model.safetensors` (latest weights), `best.safetensors` (best weights so far), `optim.pt` (optimizer and
scheduler state, read with `torch.load(weights_only=True)`) and `state.json` (kind, epoch, best, history).
Re-running a command resumes from the latest one; a finished run is not retrained.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from clippings.archive import (
    ARCHIVE_ONLY,
    ImagePolicy,
    exists,
    filesystem,
    is_remote,
    join,
    read_archive,
    read_row_image,
)
from clippings.errors import BadInput

STATE_FILE = "state.json"
LATEST_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIM_FILE = "optim.pt"
CHECKPOINT_PREFIX = "epoch-"
PREPROCESS_CHUNK = 256

# ---------------------------------------------------------------- archive → tensors (driver side)


@dataclass
class PairData:
    """Image-caption pairs as arrays: pixels (n, 3, H, W) float32, token ids and mask (n, L) int64,
    labels (n,) int class codes or None, and provenance (path, rows, sha256 of the sorted ids)."""

    ids: list[str]
    pixels: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray | None
    provenance: dict[str, Any]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"pixels": self.pixels, "input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.labels is not None:
            out["labels"] = self.labels
        return out


def load_pairs(archive: str, loaded, *, labelled: bool, dedupe_captions: bool = False,
               images: ImagePolicy = ARCHIVE_ONLY) -> PairData:
    """Read an archive and turn every row into model-ready tensors with `loaded`'s processor.

    archive: dataset folder (local or s3://). loaded: a `clippings.model.LoadedModel`. labelled: require a
    label on every row and return class codes. dedupe_captions: keep only the first row of each exact
    caption (pretraining: duplicated captions would be false negatives of each other; null and empty
    captions are one caption, ""). images: which `image_path` locations outside the archive folder may be
    read (default: none).
    An undecodable or missing image is a BadInput naming the archive and clipping id (training data must be
    clean; quarantine it first). Cost: the whole archive decoded once, O(n) image resizes on one core.
    """
    from clippings.model import decode_image, preprocess_images, tokenize

    table = read_archive(archive, require_labels=labelled)
    ids = table.column("clipping_id").to_pylist()
    captions = [c or "" for c in table.column("caption").to_pylist()]
    keep = list(range(len(ids)))
    if dedupe_captions:
        seen: set[str] = set()
        keep = [i for i in keep if not (captions[i] in seen or seen.add(captions[i]))]
    image_bytes = table.column("image").to_pylist()
    paths = table.column("image_path").to_pylist()
    chunks = []
    for start in range(0, len(keep), PREPROCESS_CHUNK):
        pil = []
        for i in keep[start : start + PREPROCESS_CHUNK]:
            try:
                pil.append(decode_image(read_row_image(archive, image_bytes[i], paths[i], images)))
            except ValueError as e:
                raise BadInput(f"archive {archive}: clipping_id {ids[i]!r}: {e}; fix or remove the row "
                               "before training") from e
        chunks.append(preprocess_images(loaded.processor, pil).numpy())
    tokens = tokenize(loaded.processor, loaded.model, [captions[i] for i in keep])
    kept_ids = [ids[i] for i in keep]
    labels = None
    if labelled:
        raw = table.column("label").to_pylist()
        _, labels = np.unique(np.asarray([raw[i] for i in keep], dtype=object).astype(str), return_inverse=True)
        labels = labels.astype(np.int64)
    provenance = {
        "path": archive,
        "rows": len(ids),
        "rows_used": len(kept_ids),
        "ids_sha256": hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16],
    }
    return PairData(kept_ids, np.concatenate(chunks), tokens["input_ids"].numpy(),
                    tokens["attention_mask"].numpy(), labels, provenance)


def code_provenance() -> dict[str, str]:
    """clippings version and, when run from a git checkout, its commit."""
    import clippings

    out = {"clippings_version": clippings.__version__}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=os.path.dirname(clippings.__file__),
                                capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# ---------------------------------------------------------------- the module DDP wraps


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


# ---------------------------------------------------------------- checkpoints


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def write_checkpoint(folder: str, model, best: dict[str, torch.Tensor], optimizer, scheduler,
                     state: dict[str, Any]) -> None:
    """Write a checkpoint folder (latest weights, best weights, optimizer/scheduler, state.json)."""
    from safetensors.torch import save_file

    save_file(_state_dict(model), os.path.join(folder, LATEST_WEIGHTS))
    save_file(best, os.path.join(folder, BEST_WEIGHTS))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
               os.path.join(folder, OPTIM_FILE))
    with open(os.path.join(folder, STATE_FILE), "w") as f:
        json.dump(state, f, indent=2, sort_keys=True)


def read_weights(folder: str, name: str, reference: dict[str, torch.Tensor] | None = None
                 ) -> dict[str, torch.Tensor]:
    """Load a safetensors weights file from a checkpoint folder (local or s3://), checked against the
    names and shapes of `reference` when given. Raises BadInput naming the file and the fix."""
    from safetensors.torch import load

    path = join(folder, name)
    try:
        fs, inner = filesystem(path)
        with fs.open(inner, "rb") as f:
            weights = load(f.read())
    except Exception as e:  # missing, truncated or not safetensors
        raise BadInput(f"checkpoint {folder}: {name} is missing or corrupt ({type(e).__name__}); delete the "
                       "checkpoint folder to resume from the one before, or use a new --run-dir") from e
    if reference is not None:
        wrong = sorted(k for k in reference if k not in weights or weights[k].shape != reference[k].shape)
        if wrong:
            raise BadInput(f"checkpoint {folder}: weights do not fit this --model ({len(wrong)} tensors differ, "
                           f"e.g. {wrong[0]!r}); use the --model it was started with or a new --run-dir")
    return weights


def read_state(folder: str, kind: str) -> dict[str, Any]:
    """A checkpoint's state.json, checked to be from a `kind` run; BadInput otherwise."""
    path = join(folder, STATE_FILE)
    try:
        fs, inner = filesystem(path)
        with fs.open(inner, "rb") as f:
            state = json.loads(f.read())
        epoch = int(state["epoch"])
        found = state["kind"]
    except Exception as e:
        raise BadInput(f"checkpoint {folder}: {STATE_FILE} is missing or corrupt ({type(e).__name__}); delete "
                       "the checkpoint folder to resume from the one before, or use a new --run-dir") from e
    if found != kind:
        raise BadInput(f"checkpoint {folder}: written by '{found}', not '{kind}'; give this command its own "
                       "--run-dir")
    state["epoch"] = epoch
    return state


def latest_checkpoint(run_path: str, kind: str, reference: dict[str, torch.Tensor]
                      ) -> tuple[str, dict[str, Any]] | None:
    """The run's newest checkpoint folder and state, fully checked (state, both weights files, optimizer
    file present), or None when the run has none. Called on the driver before Ray Train starts, so a bad
    folder is one clear BadInput instead of failing workers. Cost: reads the newest checkpoint once."""
    fs, inner = filesystem(run_path)
    if not fs.exists(inner):
        return None
    names = sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(inner, detail=False))
    folders = [n for n in names if n.startswith(CHECKPOINT_PREFIX)]
    if not folders:
        return None
    folder = join(run_path, folders[-1])
    state = read_state(folder, kind)
    for name in (LATEST_WEIGHTS, BEST_WEIGHTS):
        read_weights(folder, name, reference)
    if not exists(join(folder, OPTIM_FILE)):
        raise BadInput(f"checkpoint {folder}: {OPTIM_FILE} is missing; delete the checkpoint folder to resume "
                       "from the one before, or use a new --run-dir")
    return folder, state


# ---------------------------------------------------------------- metrics and progress


def write_metrics_csv(run_path: str, history: list[dict[str, Any]]) -> None:
    """Write the whole per-epoch history to `run_path/metrics.csv` atomically (local or s3://)."""
    from clippings.archive import write_bytes_atomic

    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_bytes_atomic(join(run_path, "metrics.csv"), buf.getvalue().encode())


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the epoch loop (inside Ray Train workers)


@dataclass
class Worker:
    """What a training worker knows about itself."""

    rank: int
    world: int
    device: torch.device
    config: dict[str, Any]
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def batch(self, name: str, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.data[name][idx]).to(self.device)

    def inputs(self, idx: np.ndarray, image: bool = True, text: bool = True, prefix: str = ""
               ) -> dict[str, torch.Tensor]:
        """Model inputs of rows `idx` of the arrays named `prefix` + pixels/input_ids/attention_mask;
        captions trimmed to the batch's longest (padding is on the right)."""
        out = {}
        if image:
            out["pixel_values"] = self.batch(prefix + "pixels", idx)
        if text:
            mask = self.data[prefix + "attention_mask"][idx]
            length = max(1, int(mask.sum(axis=1).max()))
            out["input_ids"] = torch.from_numpy(self.data[prefix + "input_ids"][idx][:, :length]).to(self.device)
            out["attention_mask"] = torch.from_numpy(mask[:, :length]).to(self.device)
        return out

    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)


class Task:
    """One training objective. Subclasses define the model view, the batch plan, the loss and validation."""

    kind = "task"
    score_name = "score"  # the validation metric that picks the best checkpoint
    maximise = True

    def module(self, clip) -> TwoTower:
        raise NotImplementedError

    def steps_per_epoch(self, worker: Worker) -> int:
        raise NotImplementedError

    def plan(self, worker: Worker, raw: TwoTower, epoch: int) -> list[np.ndarray]:
        """This rank's row indices for each step of `epoch` (the same number of steps on every rank)."""
        raise NotImplementedError

    def loss(self, worker: Worker, model, idx: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def validate(self, worker: Worker, raw: TwoTower) -> dict[str, float]:
        """Validation metrics; must include `score_name`."""
        raise NotImplementedError


def run_worker(config: dict[str, Any], task: Task) -> None:
    """The epoch loop every Ray Train worker runs: restore, train, validate, checkpoint each epoch."""
    import ray
    import ray.train
    import ray.train.torch

    from clippings.model import load_model
    from clippings.progress import Poster
    from clippings.raylocal import size_thread_pools

    ctx = ray.train.get_context()
    size_thread_pools(float(config["cpus"]))
    poster = Poster(config.get("board") if ctx.get_world_rank() == 0 else None)  # rank 0 speaks for all
    torch.manual_seed(int(config["seed"]))
    worker = Worker(ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device(), config)
    worker.data = ray.get(config["data"])
    run_path = config["run_path"]
    if not is_remote(run_path):  # lets tests and operators find (and kill) workers
        os.makedirs(os.path.join(run_path, "pids"), exist_ok=True)
        with open(os.path.join(run_path, "pids", f"rank-{worker.rank}.pid"), "w") as f:
            f.write(str(os.getpid()))

    clip = load_model(config["model"]).model
    raw = task.module(clip).to(worker.device)
    groups = raw.param_groups(config["lr"], config.get("vision_lr"), config.get("text_lr"))
    optimizer = torch.optim.AdamW(groups, lr=config["lr"], betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-3)
    total = task.steps_per_epoch(worker) * int(config["epochs"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, config.get("warmup", 0.1)))
    state: dict[str, Any] = {"kind": task.kind, "epoch": 0, "best": None, "history": []}
    best = _state_dict(clip)
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
    for epoch in range(start_epoch + 1, int(config["epochs"]) + 1):
        raw.eval()
        steps = task.plan(worker, raw, epoch)
        raw.train()
        began, losses, samples = time.perf_counter(), [], 0
        status = f"epoch {epoch}/{config['epochs']}" + (f", last epoch {last}" if last else "")
        for i, idx in enumerate(steps):
            with worker.autocast():
                loss = task.loss(worker, model, idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            samples += len(idx) * worker.world
            per_step = samples / (i + 1)
            poster.progress((epoch - 1) * len(steps) * per_step + samples,
                            int(config["epochs"]) * len(steps) * per_step, status)
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
            best = _state_dict(clip)
        state["epoch"] = epoch
        report = {k: v for k, v in row.items() if isinstance(v, (int, float))}
        last = ", ".join(f"{k} {v:.4f}" for k, v in (("loss", row["loss"]), *metrics.items()))
        poster.detail(f"{task.kind} epoch {epoch}/{config['epochs']}: {last}, {row['samples_per_s']:.1f} samples/s")
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


def all_gather_with_grad(x: torch.Tensor, worker: Worker) -> torch.Tensor:
    """Concatenate every rank's `x` in rank order, gradients flowing back to each rank's own rows."""
    if worker.world == 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated name; the replacement has no autograd
        return torch.cat(dist_fn.all_gather(x.contiguous()))


# ---------------------------------------------------------------- driver side


def fit(loop: Callable[[dict], None], config: dict[str, Any], data: dict[str, np.ndarray], *, workers: int,
        gpu: bool, run_dir: str, name: str, max_failures: int = 3):
    """Run `loop` on `workers` Ray Train workers (gloo on CPU, NCCL on GPU) with checkpoints under
    `run_dir/name`; resumes from the latest checkpoint there. Returns the Ray Train `Result`.

    data: arrays put once in the object store and shared by all workers. Cost: ~15 s of start-up.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from clippings.progress import training_progress
    from clippings.raylocal import init_ray, runtime_env

    init_ray()
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_worker = max(0.25, min(cpus / workers, 8.0) - 0.25)  # fractional: leave room for the controller
    storage = run_dir if is_remote(run_dir) else os.path.abspath(run_dir)
    config = {**config, "data": ray.put(data), "cpus": per_worker, "run_path": join(storage, name)}
    with training_progress(name) as board:  # one live line fed by rank 0
        trainer = TorchTrainer(
            loop,
            train_loop_config={**config, "board": board},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu,
                                         resources_per_worker={"CPU": per_worker}),
            run_config=RunConfig(name=name, storage_path=storage,
                                 failure_config=FailureConfig(max_failures=max_failures),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2),
                                 worker_runtime_env=runtime_env(per_worker)),  # pools sized to the grant
        )
        return trainer.fit()


def run_path_of(run_dir: str, name: str) -> str:
    return join(run_dir if is_remote(run_dir) else os.path.abspath(run_dir), name)


def train_and_save(loop: Callable[[dict], None], kind: str, config: dict[str, Any], data: dict[str, np.ndarray],
                   base, out: str, *, workers: int, gpu: bool, run_dir: str, meta: dict[str, Any]
                   ) -> dict[str, Any]:
    """Train (or resume, or skip when the run already reached `config['epochs']`) and write `out`.

    The newest checkpoint is checked here first, so a corrupt or foreign one is one BadInput line.
    Returns the final checkpoint state (best metrics, per-epoch history).
    """
    run_path = run_path_of(run_dir, kind)
    found = latest_checkpoint(run_path, kind, _state_dict(base.model))
    epochs = int(config["epochs"])
    if found is not None and found[1]["epoch"] >= epochs:
        progress(f"{kind}: {run_path} already holds epoch {found[1]['epoch']}; not retraining")
    else:
        fit(loop, config, data, workers=workers, gpu=gpu, run_dir=run_dir, name=kind)
    return finish(run_path, kind, base, out, epochs, meta)


def finish(run_path: str, kind: str, base, out: str, epochs: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the best weights of the run's latest checkpoint to `out` as a plain HF folder + clippings.json.

    base: the `LoadedModel` the run started from (architecture and processor). Returns the final state.
    """
    from clippings.model import save_model

    found = latest_checkpoint(run_path, kind, _state_dict(base.model))
    if found is None or found[1]["epoch"] < epochs:
        raise RuntimeError(f"{kind}: training ended without a checkpoint of epoch {epochs} in {run_path}")
    folder, state = found
    base.model.load_state_dict(read_weights(folder, BEST_WEIGHTS))
    save_model(base.model, base.processor, out, {**meta, **_best_meta(state), "run": run_path})
    return state


def _best_meta(state: dict[str, Any]) -> dict[str, Any]:
    best = dict(state["best"] or {})
    return {**best, "epochs_trained": state["epoch"]}
