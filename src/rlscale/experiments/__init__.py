"""Experiment specs (a base config plus a grid) and the executors that run them."""

from rlscale.experiments.executors import (
    LocalExecutor,
    RayExecutor,
    RunOutcome,
    SweepSummary,
    run_state,
    train_run,
)
from rlscale.experiments.spec import ExperimentSpec, RunSpec, expand, load_spec

__all__ = [
    "ExperimentSpec", "LocalExecutor", "RayExecutor", "RunOutcome", "RunSpec", "SweepSummary",
    "expand", "load_spec", "run_state", "train_run",
]
