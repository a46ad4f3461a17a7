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
import shutil
from pathlib import Path
from typing import Any

import torch

from rlscale.errors import ConfigError
from rlscale.models.training_state import read_training_state, write_training_state
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
    write_training_state(final, model, optimizer, {
        "step": step,
        "config_hash": config.config_hash(),
        "config": config.hashed_fields(),
        "totals": totals,
    })
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
    return read_training_state(path, model, optimizer)


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
