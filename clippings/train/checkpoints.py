"""Training checkpoints: one folder per epoch, written by rank 0 and reported to Ray Train.

`model.safetensors` (latest weights), `best.safetensors` (best weights so far), `optim.pt` (optimizer and
scheduler state, read with `torch.load(weights_only=True)`) and `state.json` (kind, epoch, best, history,
quarantined rows). Re-running a command with the settings the run recorded (`clippings.train.fit.claim_run`)
resumes from the latest one; a finished run is not retrained. The newest folder is checked on the driver
before Ray Train starts, so a bad one is one BadInput line.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

import torch

from clippings.errors import BadInput
from clippings.storage import exists, filesystem, join

STATE_FILE = "state.json"
LATEST_WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "best.safetensors"
OPTIM_FILE = "optim.pt"
CHECKPOINT_PREFIX = "epoch-"


def state_dict_cpu(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of `model`'s weights (what safetensors writes and `best` keeps)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def write_checkpoint(folder: str, model, best: dict[str, torch.Tensor], optimizer, scheduler,
                     state: dict[str, Any]) -> None:
    """Write a checkpoint folder (latest weights, best weights, optimizer/scheduler, state.json)."""
    from safetensors.torch import save_file

    save_file(state_dict_cpu(model), os.path.join(folder, LATEST_WEIGHTS))
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


def checkpoint_folders(run_path: str) -> list[str]:
    """Names of the run's checkpoint folders (`epoch-NNNN`), oldest first; [] when it has none.

    Listed afresh: Ray Train writes them through its own filesystem, so an s3fs listing cached before would
    hide them."""
    fs, inner = filesystem(run_path)
    fs.invalidate_cache(inner)
    if not fs.exists(inner):
        return []
    names = sorted(os.path.basename(p.rstrip("/")) for p in fs.ls(inner, detail=False))
    return [n for n in names if n.startswith(CHECKPOINT_PREFIX)]


def latest_checkpoint(run_path: str, kind: str, reference: dict[str, torch.Tensor]
                      ) -> tuple[str, dict[str, Any]] | None:
    """The run's newest checkpoint folder and state, fully checked (state, both weights files, optimizer
    file present), or None when the run has none. Called on the driver before Ray Train starts, so a bad
    folder is one clear BadInput instead of failing workers. Cost: reads the newest checkpoint once."""
    folders = checkpoint_folders(run_path)
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


def write_metrics_csv(run_path: str, history: list[dict[str, Any]]) -> None:
    """Write the whole per-epoch history to `run_path/metrics.csv` atomically (local or s3://)."""
    from clippings.storage import write_bytes_atomic

    columns: list[str] = []
    for row in history:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    write_bytes_atomic(join(run_path, "metrics.csv"), buf.getvalue().encode())
