"""Experiment specs: a base training config plus a grid of overrides, expanded into named runs.

A spec file looks like

    name: exp1_ladder
    base: ../smoke.yaml            # a training config, relative to this file
    overrides: {eval_every: 2}     # applied to every run
    grid:                          # the cartesian product of these lists, in this order
      model: [mini-308k, mini-862k]
      seed: [0, 1]

A grid value may also be a mapping of several keys that vary together (and an optional `id`), e.g.
`size: [{id: 0.5B, model: /models/Qwen2.5-0.5B, nominal_n: 0.5e9}, ...]`.

Every run gets a readable, stable id built from the grid values (`mini-308k_s0`), so a rerun of the
same spec finds the same run directories and can skip or resume them.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from rlscale.config import read_yaml_mapping, validate_file
from rlscale.errors import ConfigError
from rlscale.runs.names import is_safe_name

# Short names in run ids for the keys a sweep usually varies; other keys use their last dotted part.
_ID_PREFIX = {"seed": "s", "group_size": "G", "data.reuse_tau": "tau", "model": "", "variant": ""}


class ExperimentSpec(BaseModel):
    """One experiment: the runs of a grid over training-config keys."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Experiment name; runs land in <out>/<name>/<run_id>/.")
    base: str | dict[str, Any] = Field(
        description="Base training config: a YAML path relative to the spec file, or a mapping.")
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Training-config keys (dotted for nested) to lists of values; the runs are "
                    "their cartesian product, in the order written.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Training-config keys set for every run of the spec.")
    description: str = Field(default="", description="What the experiment measures.")


class RunSpec(BaseModel):
    """One run of an experiment: its id and the training-config overrides that define it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experiment: str
    run_id: str
    base: str | dict[str, Any]
    overrides: dict[str, Any]

    def override_args(self) -> list[str]:
        """The overrides as `key=value` strings, as `rlscale train` takes them."""
        return [f"{k}={_yaml_scalar(v)}" for k, v in self.overrides.items()]

    def config(self, root: str | Path, threads: int | None = None):
        """The validated TrainConfig of this run, landing in <root>/<experiment>/<run_id>/."""
        from rlscale.rl.config import load_config

        placement = {"out": str(root), "experiment": self.experiment, "run_id": self.run_id}
        if threads is not None:
            placement["threads"] = threads
        args = [f"{k}={_yaml_scalar(v)}" for k, v in placement.items()] + self.override_args()
        if isinstance(self.base, dict):  # an inline base is applied as overrides of the defaults
            return load_config(None, _flatten(self.base) + args)
        return load_config(self.base, args)


def load_spec(path: str | Path) -> tuple[ExperimentSpec, Path]:
    """Read and validate a spec file; returns the spec and the directory relative paths start from."""
    path = Path(path)
    raw = read_yaml_mapping(path, "experiment spec")
    spec = validate_file(ExperimentSpec, raw, path)
    for key, values in spec.grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid key '{key}' must be a non-empty list")
    if not is_safe_name(spec.name):
        raise ConfigError(f"{path}: key 'name': {spec.name!r} is not a safe folder name (letters, "
                          "digits and . _ + = -, not starting with . or -)")
    return spec, path.parent


def expand(spec: ExperimentSpec, spec_dir: Path | None = None,
           extra_overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """All runs of a spec, in grid order, with unique readable ids."""
    base = spec.base
    if isinstance(base, str):
        base = str((spec_dir or Path(".")) / base) if not Path(base).is_absolute() else base
    keys = list(spec.grid)
    runs, seen = [], set()
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        point = dict(zip(keys, values, strict=True))
        run_id = _run_id(point) if point else spec.name
        if run_id in seen:
            raise ConfigError(f"experiment '{spec.name}': two runs would share id '{run_id}'")
        seen.add(run_id)
        settings = {}
        for key, value in point.items():  # a mapping sets several keys together (see module doc)
            settings.update({k: v for k, v in value.items() if k != "id"}
                            if isinstance(value, dict) else {key: value})
        overrides = {**spec.overrides, **(extra_overrides or {}), **settings}
        runs.append(RunSpec(experiment=spec.name, run_id=run_id, base=base, overrides=overrides))
    return runs


def validate_runs(runs: list[RunSpec], spec_path: str | Path = "spec") -> None:
    """Build every run's config before anything starts, so a bad key fails the sweep at once."""
    for run in runs:
        try:
            run.config("runs")
        except ConfigError as e:
            raise ConfigError(f"{spec_path}: run '{run.run_id}': {e}") from None


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[str]:
    args = []
    for key, value in mapping.items():
        if isinstance(value, dict):
            args += _flatten(value, f"{prefix}{key}.")
        else:
            args.append(f"{prefix}{key}={_yaml_scalar(value)}")
    return args


def _run_id(point: dict[str, Any]) -> str:
    parts = []
    for key, value in point.items():
        if isinstance(value, dict):
            parts.append(str(value.get("id") or "-".join(map(str, value.values()))))
            continue
        prefix = _ID_PREFIX.get(key, key.split(".")[-1] + "-")
        text = Path(str(value)).name if isinstance(value, str) else str(value)
        parts.append(f"{prefix}{text}")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))


def _yaml_scalar(value: Any) -> str:
    """A value written so that YAML parses it back to the same thing."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
