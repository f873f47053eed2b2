"""Resumable training checkpoints, kept in a work folder apart from the finished output.

A checkpoint is a folder ``checkpoint-<step>/`` with

* ``lora.safetensors``: the trainable (LoRA) parameters by module name, fp32;
* ``training_state.pt``: optimizer, LR-scheduler and grad-scaler states and the random-generator
  states (loaded with ``torch.load(weights_only=True)``: tensors and plain containers only);
* ``state.json``: the step, the settings that must match on resume, and the loss history.

Restoring all three makes a resumed run take exactly the steps an uninterrupted run would.
Folders are written under a temporary name and renamed, so a crash never leaves a half checkpoint.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from ..atomic import atomic_directory
from ..errors import InputError
from ..textfiles import read_json
from ..weight_files import load_safetensors, load_tensor_pickle

PREFIX = "checkpoint-"


@dataclass
class Checkpoint:
    folder: Path
    params: dict[str, torch.Tensor]
    training_state: dict[str, Any]
    info: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.info["step"])


def checkpoint_folder(work_dir: Path, step: int) -> Path:
    return Path(work_dir) / f"{PREFIX}{step:06d}"


def list_checkpoints(work_dir: Path) -> list[Path]:
    """Complete checkpoints in ``work_dir``, oldest first."""
    work_dir = Path(work_dir)
    if not work_dir.is_dir():
        return []
    found = [d for d in work_dir.iterdir() if d.is_dir() and d.name.startswith(PREFIX) and (d / "state.json").exists()]
    return sorted(found, key=lambda d: d.name)


def latest_checkpoint(work_dir: Path) -> Path | None:
    found = list_checkpoints(work_dir)
    return found[-1] if found else None


def save_checkpoint(work_dir: Path, step: int, params: dict[str, torch.Tensor], training_state: dict[str, Any],
                    info: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoint-<step>`` atomically and prune all but the newest ``keep`` checkpoints."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    dest = checkpoint_folder(work_dir, step)
    with atomic_directory(dest, overwrite=True) as tmp:
        save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in params.items()}, str(tmp / "lora.safetensors"))
        torch.save(training_state, tmp / "training_state.pt")
        (tmp / "state.json").write_text(json.dumps({**info, "step": step}, indent=1))
    for old in list_checkpoints(work_dir)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return dest


def load_checkpoint(folder: Path) -> Checkpoint:
    folder = Path(folder)
    try:
        info = read_json(folder / "state.json", dict, "checkpoint state")
        if not isinstance(info.get("step"), int):
            raise InputError(folder / "state.json", "not a valid checkpoint state: 'step' is missing")
        params = load_safetensors(folder / "lora.safetensors")
        state = load_tensor_pickle(folder / "training_state.pt")
        if not isinstance(state, dict):
            raise InputError(folder / "training_state.pt", "not a facechain training state")
    except InputError as e:
        raise InputError(e.path, f"{e.reason}; unusable checkpoint: train without --resume to start over") from None
    return Checkpoint(folder, params, state, info)
