"""Executors: run an experiment's runs locally (in turn or in a process pool) or as Ray tasks.

Both are resumable: a run whose meta.json says "finished" is skipped, a run that exists but did
not finish is resumed from its last checkpoint, and a run that fails is reported while the others
go on. Each worker gets its share of the cores as torch threads, never more.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rlscale.errors import DataError, RunLogError
from rlscale.experiments.spec import RunSpec
from rlscale.runs.read import read_meta
from rlscale.runs.schema import FINISHED, META_FILE


@dataclass
class RunOutcome:
    run_id: str
    status: str  # "skipped" (already finished), "finished", "resumed", or "failed"
    run_dir: str
    error: str = ""


@dataclass
class SweepSummary:
    experiment: str
    root: str
    outcomes: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        return counts


def run_dir_of(run: RunSpec, root: str | Path) -> Path:
    return Path(root) / run.experiment / run.run_id


def run_state(run_dir: Path) -> str:
    """'new', 'finished' or 'interrupted', read from the run's meta.json (a RunMeta)."""
    if not (run_dir / META_FILE).exists():
        return "new"
    try:
        status = read_meta(run_dir).get("status")
    except (OSError, RunLogError, DataError):  # unreadable: let the resume find out
        return "interrupted"
    return "finished" if status == FINISHED else "interrupted"


def train_run(run: RunSpec, root: str, threads: int) -> RunOutcome:
    """Train (or resume, or skip) one run. Module-level so that process pools and Ray can ship it."""
    from rlscale.rl.trainer import train

    run_dir = run_dir_of(run, root)
    state = run_state(run_dir)
    if state == "finished":
        return RunOutcome(run.run_id, "skipped", str(run_dir))
    try:
        train(run.config(root, threads), resume=state == "interrupted", progress=False)
    except Exception:  # one failed run must not stop the sweep; the error is reported
        return RunOutcome(run.run_id, "failed", str(run_dir), traceback.format_exc(limit=8))
    return RunOutcome(run.run_id, "resumed" if state == "interrupted" else "finished", str(run_dir))


RunFn = Callable[[RunSpec, str, int], RunOutcome]


class LocalExecutor:
    """Runs in turn in this process (workers=1) or in a pool of `workers` processes.

    Threads: each worker gets cores // workers torch threads, so the pool never oversubscribes.
    """

    def __init__(self, workers: int = 1, cores: int | None = None, run_fn: RunFn = train_run):
        self.workers = max(1, workers)
        self.cores = cores or os.cpu_count() or 1
        self.run_fn = run_fn

    def run(self, runs: Sequence[RunSpec], root: str | Path) -> SweepSummary:
        root = str(root)
        threads = max(1, self.cores // self.workers)
        summary = SweepSummary(runs[0].experiment if runs else "", root)
        with _progress() as progress:
            task = progress.add_task(summary.experiment, total=len(runs))
            if self.workers == 1:
                for run in runs:
                    summary.outcomes.append(self.run_fn(run, root, threads))
                    progress.advance(task)
            else:
                # spawn: a forked torch process can deadlock on its thread pools
                with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
                    futures = [pool.submit(self.run_fn, run, root, threads) for run in runs]
                    for future in as_completed(futures):
                        summary.outcomes.append(future.result())
                        progress.advance(task)
        summary.outcomes.sort(key=lambda o: [r.run_id for r in runs].index(o.run_id))
        return summary


class RayExecutor:
    """Each run is a Ray task asking for `threads` CPUs; results land in the same run root.

    `address=None` starts (or joins) Ray on this machine; give a cluster address ("ray://...",
    "auto") for real use. The run root must be on storage every node sees.
    """

    def __init__(self, address: str | None = None, threads: int = 1, num_cpus: int | None = None,
                 run_fn: RunFn = train_run):
        self.address, self.threads, self.num_cpus, self.run_fn = address, threads, num_cpus, run_fn

    def run(self, runs: Sequence[RunSpec], root: str | Path) -> SweepSummary:
        import ray

        root = str(Path(root).resolve())
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if self.address is None:
                kwargs["num_cpus"] = self.num_cpus or os.cpu_count()
            ray.init(address=self.address, **kwargs)
        remote = ray.remote(num_cpus=self.threads, max_retries=0)(self.run_fn)
        summary = SweepSummary(runs[0].experiment if runs else "", root)
        pending = {remote.remote(run, root, self.threads): run for run in runs}
        with _progress() as progress:
            task = progress.add_task(f"{summary.experiment} (ray)", total=len(runs))
            by_id = {}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    run = pending.pop(ref)
                    try:
                        by_id[run.run_id] = ray.get(ref)
                    except Exception as e:  # a worker that died (OOM, node lost) fails its run only
                        by_id[run.run_id] = RunOutcome(run.run_id, "failed",
                                                       str(run_dir_of(run, root)), repr(e))
                    progress.advance(task)
        summary.outcomes = [by_id[r.run_id] for r in runs]
        return summary


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=False)
