"""The driver side of training: start Ray Train, resume or skip a run, write the model folder.

`fit` starts `TorchTrainer` (gloo on CPU, NCCL on GPU) with checkpoints under `run_dir/name`;
`train_and_save` checks the newest checkpoint first (a bad one is one BadInput line), skips a finished run,
and `finish` writes the best weights as a plain HF folder with `clippings.json` (metrics, provenance).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from clippings.archive import is_remote, join
from clippings.train.checkpoints import BEST_WEIGHTS, latest_checkpoint, read_weights, state_dict_cpu


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fit(loop: Callable[[dict], None], config: dict[str, Any], *, workers: int, gpu: bool, run_dir: str,
        name: str, data_share: float = 0.0, max_failures: int = 3):
    """Run `loop` on `workers` Ray Train workers (gloo on CPU, NCCL on GPU) with checkpoints under
    `run_dir/name`; resumes from the latest checkpoint there. Returns the Ray Train `Result`.

    config: the loop's config (small: data travels as Ray Data streams or object-store refs inside it).
    data_share: the fraction of the cluster's CPUs left out of the workers' grants for data tasks beside them
    (a streaming loop's decoding). Cost: ~15 s of start-up.
    """
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from clippings.progress import training_progress
    from clippings.raylocal import init_ray, runtime_env

    init_ray()
    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    per_worker = max(0.25, min(cpus * (1 - data_share) / workers, 8.0) - 0.25)  # fractional: room for the controller
    storage = run_dir if is_remote(run_dir) else os.path.abspath(run_dir)
    config = {**config, "cpus": per_worker, "run_path": join(storage, name)}
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


def train_and_save(loop: Callable[[dict], None], kind: str, config: dict[str, Any], base, out: str, *,
                   workers: int, gpu: bool, run_dir: str, meta: dict[str, Any], data_share: float = 0.0
                   ) -> dict[str, Any]:
    """Train (or resume, or skip when the run already reached `config['epochs']`) and write `out`.

    The newest checkpoint is checked here first, so a corrupt or foreign one is one BadInput line.
    data_share: see `fit`. Returns the final checkpoint state (best metrics, per-epoch history).
    """
    run_path = run_path_of(run_dir, kind)
    found = latest_checkpoint(run_path, kind, state_dict_cpu(base.model))
    epochs = int(config["epochs"])
    if found is not None and found[1]["epoch"] >= epochs:
        progress(f"{kind}: {run_path} already holds epoch {found[1]['epoch']}; not retraining")
    else:
        fit(loop, config, workers=workers, gpu=gpu, run_dir=run_dir, name=kind, data_share=data_share)
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
