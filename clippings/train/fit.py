"""The driver side of training: start Ray Train, resume or skip a run, write the model folder.

`claim_run` makes the run folder this run's before any work (an earlier run with other settings is refused,
or removed with --overwrite); `fit` starts `TorchTrainer` (gloo on CPU, NCCL on GPU) on a task with
checkpoints under `run_dir/<task kind>`; `train_and_save` checks the newest checkpoint first (a bad one is one
BadInput line), skips a finished run, and `finish` writes the best weights as a plain HF folder with
`clippings.json` (metrics, provenance).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from clippings.image_paths import ImagePolicy
from clippings.settings import check_settings, dataset_fingerprint, read_settings, record_settings
from clippings.storage import is_remote, join, remove_tree
from clippings.train.checkpoints import (
    BEST_WEIGHTS,
    checkpoint_folders,
    latest_checkpoint,
    read_weights,
    state_dict_cpu,
)

if TYPE_CHECKING:
    from clippings.train.loop import Task


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fit(task: Task, model: str, *, workers: int, gpu: bool, run_dir: str, data_share: float = 0.0,
        max_failures: int = 3):
    """Run `task`'s epoch loop (`clippings.train.loop.train_loop`) from the start `model` on `workers` Ray
    Train workers (gloo on CPU, NCCL on GPU) with checkpoints under `run_dir/<task.kind>`; resumes from the
    latest checkpoint there. Returns the Ray Train `Result`.

    task: put in the object store once and fetched by every worker (small: data travels as Ray Data streams or
    object-store refs inside it).
    data_share: the fraction of the cluster's CPUs left out of the workers' grants for data tasks beside them
    (a streaming loop's decoding). Cost: ~15 s of start-up.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from clippings.progress import training_progress
    from clippings.raylocal import init_ray, runtime_env
    from clippings.train.loop import Run, train_loop

    init_ray()
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_worker = max(0.25, min(cpus * (1 - data_share) / workers, 8.0) - 0.25)  # fractional: room for the controller
    storage = run_dir if is_remote(run_dir) else os.path.abspath(run_dir)
    name = task.kind
    with training_progress(name) as board:  # one live line fed by rank 0
        # The task and run go through the object store: Ray Train's controller unpickles the config, and a
        # reference costs it nothing where the task would import the model stack (seconds of a core a fit:
        # docs/benchmarks.md#ray-train-fits-the-controller-no-longer-imports-the-model-stack).
        shipped = ray.put({"task": task, "run": Run(model, join(storage, name), per_worker, board)})
        trainer = TorchTrainer(
            train_loop,
            train_loop_config={"shipped": shipped},
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


def training_settings(base, data: Mapping[str, str], images: ImagePolicy, values: Mapping[str, Any]
                      ) -> dict[str, Any]:
    """The settings that define a training run's weights, to record and compare (`claim_run`).

    They are: the start model's weights fingerprint (`base`, a `LoadedModel`: not its name, so a moved
    folder still resumes), the fingerprint of each dataset in `data` (name -> folder), the image policy
    (which rows can be read at all), and `values`: the objective's and optimizer's settings, the seed, the
    epochs (the learning-rate schedule spans them: a 10-epoch run stopped at 5 is not a 5-epoch run) and the
    batch composition as computed from the workers (SupCon's groups per step rounded up to a multiple of
    them, pretraining's lane count). Not the workers as such: every step's loss is taken over the whole
    global batch gathered from all ranks (`DistributedLossWrapper`, `all_gather_with_grad`, both scaled so
    DDP's averaging gives that batch's gradient), so they change only float summation order
    (tests/test_pretrain.py checks one worker against two) and a run may resume on a larger or smaller
    cluster. Nor --gpu (bf16 autocast: the device's rounding, not what is computed), paths of outputs,
    logging or progress flags.
    """
    return {"start_model": base.fingerprint,
            **{name: dataset_fingerprint(path, name) for name, path in data.items()},
            "images": asdict(images), **values}


def claim_run(run_path: str, kind: str, settings: Mapping[str, Any], overwrite: bool) -> None:
    """Make `run_path` this run's before any work: resume or skip only a run of the same `settings`.

    overwrite: delete the earlier run (checkpoints, metrics, record) and start afresh. Otherwise a run that
    holds checkpoints must have recorded exactly `settings` (`clippings.settings.check_settings`: one
    BadInput line naming the first difference and the fix); one without checkpoints computed nothing, so its
    record is replaced. Then records `settings` in the run folder (atomically, local or s3://).
    """
    if overwrite:
        if remove_tree(run_path):
            progress(f"{kind}: --overwrite: removed the earlier run {run_path}")
    elif checkpoint_folders(run_path):
        check_settings(read_settings(run_path), settings, f"{kind}: run {run_path}", "--out or --run-dir")
    record_settings(run_path, settings)


def train_and_save(task: Task, model: str, base, out: str, *, workers: int, gpu: bool, run_dir: str,
                   meta: dict[str, Any], data_share: float = 0.0) -> dict[str, Any]:
    """Train `task` from `model` (or resume, or skip when the run already reached `task.settings.epochs`) and
    write `out`.

    The caller has claimed the run folder first (`claim_run`), so a checkpoint found here is of this run's
    settings. The newest checkpoint is checked here first, so a corrupt or foreign one is one BadInput line.
    base: `model` loaded (`LoadedModel`). data_share: see `fit`. Returns the final checkpoint state (best
    metrics, per-epoch history).
    """
    kind, epochs = task.kind, task.settings.epochs
    run_path = run_path_of(run_dir, kind)
    found = latest_checkpoint(run_path, kind, state_dict_cpu(base.model))
    if found is not None and found[1]["epoch"] >= epochs:
        progress(f"{kind}: {run_path} already holds epoch {found[1]['epoch']}; not retraining")
    else:
        fit(task, model, workers=workers, gpu=gpu, run_dir=run_dir, data_share=data_share)
    return finish(run_path, kind, base, out, epochs, meta)


def finish(run_path: str, kind: str, base, out: str, epochs: int, meta: dict[str, Any]) -> dict[str, Any]:
    """Write the best weights of the run's latest checkpoint to `out` as a plain HF folder + clippings.json.

    base: the `LoadedModel` the run started from (architecture and processor). Returns the final state.
    """
    from clippings.model import save_model

    found = latest_checkpoint(run_path, kind, state_dict_cpu(base.model))
    if found is None or found[1]["epoch"] < epochs:
        raise RuntimeError(f"{kind}: training ended without a checkpoint of epoch {epochs} in {run_path}")
    folder, state = found
    base.model.load_state_dict(read_weights(folder, BEST_WEIGHTS))
    save_model(base.model, base.processor, out, {**meta, **_best_meta(state), "run": run_path})
    return state


def _best_meta(state: dict[str, Any]) -> dict[str, Any]:
    best = dict(state["best"] or {})
    return {**best, "epochs_trained": state["epoch"]}


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
