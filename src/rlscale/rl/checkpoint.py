"""Resumable checkpoints: model, optimizer, RNG states and accounting, written atomically.

Layout: `<run_dir>/checkpoints/step_<NNNNNN>/` with
  model.safetensors      the policy's weights (safetensors: loading never runs code)
  optimizer.safetensors  AdamW's per-parameter tensors (exp_avg, exp_avg_sq, step)
  state.json             step, config hash and fields, param groups, RNG states, cumulative totals
A checkpoint is written into a temporary folder and renamed into place, so a kill mid-write leaves
either the whole checkpoint or none. The data position is the step: the prompt schedule is a pure
function of the config, and each step's sampling seed is derived from (seed, step).
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

from rlscale.errors import ConfigError
from rlscale.rl.config import TrainConfig

CHECKPOINTS_DIR = "checkpoints"
_PREFIX = "step_"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / f"{_PREFIX}{step:06d}"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The completed checkpoint with the highest step, or None."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    done = [p for p in root.glob(f"{_PREFIX}*") if p.is_dir() and (p / "state.json").exists()
            and not p.name.endswith(".tmp")]
    return max(done, key=lambda p: int(p.name.removeprefix(_PREFIX)), default=None)


def save_checkpoint(run_dir: Path, step: int, config: TrainConfig, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, *, totals: dict[str, Any],
                    keep: int = 1) -> Path:
    """Write the checkpoint of `step` atomically; keep only the `keep` most recent."""
    final = checkpoint_dir(run_dir, step)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
    tensors, groups = _optimizer_tensors(optimizer)
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    state = {
        "step": step,
        "config_hash": config.config_hash(),
        "config": config.hashed_fields(),
        "optimizer_param_groups": groups,
        "rng": _rng_states(),
        "totals": totals,
    }
    (tmp / "state.json").write_text(json.dumps(state))
    _fsync_tree(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)

    old = sorted((p for p in final.parent.glob(f"{_PREFIX}*") if not p.name.endswith(".tmp")),
                 key=lambda p: int(p.name.removeprefix(_PREFIX)))
    for stale in old[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: Path, config: TrainConfig, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model, optimizer and RNG states from `path`; returns state.json.

    Refuses a checkpoint written under another config, naming the keys that differ.
    """
    state = json.loads((Path(path) / "state.json").read_text())
    if state["config_hash"] != config.config_hash():
        ours = config.hashed_fields()
        diff = config_diff(state["config"], ours)
        raise ConfigError(
            f"{path}: checkpoint was written with another config; differing keys: "
            + ", ".join(f"'{k}' (checkpoint {a!r}, now {b!r})" for k, a, b in diff))
    load_model(model, str(Path(path) / "model.safetensors"))
    _load_optimizer(optimizer, load_file(str(Path(path) / "optimizer.safetensors")),
                    state["optimizer_param_groups"])
    _set_rng_states(state["rng"])
    return state


def config_diff(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf that differs."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out


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
