"""The training checkpoint: one directory per epoch, written by world rank 0 and handed to ``ray.train.report``.

Layout::

    checkpoint_<timestamp>/
      state.pt       {"model", "optimizer", "scheduler", "epoch", "global_step", "mlflow_run_id"}: everything
                     needed to continue training (``epoch`` is the last finished epoch, 0-based)
      encoder.pt     the encoder's state_dict alone (what embedding needs)
      model.json     how to rebuild the encoder and feed it (see :class:`EncoderInfo` fields)

A run directory (``<storage_path>/<name>``) holds several of them; :func:`latest_checkpoint` picks the newest epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from spacessl.errors import SpacesslError

STATE_FILE = "state.pt"
ENCODER_FILE = "encoder.pt"
INFO_FILE = "model.json"


class CheckpointError(SpacesslError):
    """A path is not a spacessl training checkpoint or run directory."""


def save_checkpoint(directory: str | Path, *, method: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, epoch: int, global_step: int, info: dict[str, Any]) -> Path:
    """Write a checkpoint of ``method`` (unwrapped, not DDP) after ``epoch`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    run_id = info.get("mlflow_run_id", "")
    torch.save({"model": method.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "global_step": global_step,
                "mlflow_run_id": run_id}, directory / STATE_FILE)
    torch.save(method.encoder.state_dict(), directory / ENCODER_FILE)
    (directory / INFO_FILE).write_text(json.dumps({**info, "epoch": epoch, "global_step": global_step}, indent=1))
    return directory


def load_state(directory: str | Path) -> dict[str, Any]:
    """The training state saved by :func:`save_checkpoint` (tensors on the CPU)."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise CheckpointError(f"{directory} is not a spacessl checkpoint (no {STATE_FILE})")
    return torch.load(path, map_location="cpu", weights_only=False)


def read_info(directory: str | Path) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint."""
    path = Path(directory) / INFO_FILE
    if not path.exists():
        raise CheckpointError(f"{directory} is not a spacessl checkpoint (no {INFO_FILE})")
    return json.loads(path.read_text())


def latest_checkpoint(path: str | Path) -> Path:
    """``path`` itself when it is a checkpoint, else its checkpoint sub-directory with the highest epoch."""
    path = Path(path)
    if (path / INFO_FILE).exists():
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist; pass a checkpoint or run directory (<storage_path>/<name>)")
    found = [(read_info(d).get("epoch", -1), d.name, d) for d in path.iterdir() if (d / INFO_FILE).exists()]
    if not found:
        raise CheckpointError(f"{path} holds no spacessl checkpoint (no */{INFO_FILE}); has the run finished an epoch?")
    return max(found)[2]
