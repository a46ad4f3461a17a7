"""A training state on disk: model, optimizer and RNG states plus a JSON record, written atomically.

Shared by the RL trainer's checkpoints (`rl.checkpoint`) and pretraining (`pretrain.supervised`).
Layout of a state folder:
  model.safetensors      the weights (safetensors: loading never runs code)
  optimizer.safetensors  the optimizer's per-parameter tensors (AdamW: exp_avg, exp_avg_sq, step)
  state.json             the caller's record, the optimizer's param groups, the RNG states
The folder is written beside its final name and renamed into place, so a kill mid-write leaves
either the whole state or the previous one.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model


def write_training_state(final: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                         state: dict[str, Any]) -> Path:
    """Model, optimizer and RNG states plus `state` (JSON) into folder `final`, atomically."""
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
    tensors, groups = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = {**state, "optimizer_param_groups": groups, "rng": _rng_states()}
    (tmp / "state.json").write_text(json.dumps(state))
    _fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_training_state(path: Path, model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what `write_training_state` wrote into model, optimizer and the RNGs; returns the
    state dict."""
    state = json.loads((Path(path) / "state.json").read_text())
    load_model(model, str(Path(path) / "model.safetensors"))
    _load_optimizer(optimizer, load_file(str(Path(path) / "optimizer.safetensors")),
                    state["optimizer_param_groups"])
    _set_rng_states(state["rng"])
    return state


# --- optimizer state as flat tensors (torch.save would pickle; we keep to safetensors) ---------


def _optimizer_tensors(optimizer: torch.optim.Optimizer):
    sd = optimizer.state_dict()
    tensors = {}
    for index, slots in sd["state"].items():
        for name, value in slots.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for group in groups:  # JSON turned tuples into lists
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --- RNG states --------------------------------------------------------------------------------


def _rng_states() -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }


def _set_rng_states(rng: dict[str, Any]) -> None:
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
