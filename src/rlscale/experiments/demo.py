"""The miniature demo: warm-start the ladder, run Exp 1 (model ladder) and Exp 2 (data reuse),
fit the laws, run the prediction protocols and write the report, all on a small CPU.

The experiments are ordinary spec files shipped in `rlscale/experiments/specs/<mode>/`, so what the
demo runs can be read, copied and rerun with `rlscale sweep`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from rich.console import Console

from rlscale.experiments.executors import LocalExecutor, SweepSummary
from rlscale.experiments.spec import expand, load_spec, validate_runs

SPECS = Path(__file__).parent / "specs"
MODES = {"full": "demo", "quick": "demo-quick"}


@dataclass
class DemoResult:
    root: Path
    report_html: Path
    report_md: Path
    sweeps: list[SweepSummary]
    wall_time: float


def demo_specs(mode: str) -> list[Path]:
    """The spec files of a demo mode, in the order they run."""
    return sorted((SPECS / MODES[mode]).glob("*.yaml"))


def _warm(name: str, threads: int) -> str:
    """Warm-start one ladder size in a worker process (cached after the first time)."""
    from rlscale.models.warmstart import ensure_ladder_model
    from rlscale.threads import set_torch_threads

    set_torch_threads(threads)
    return str(ensure_ladder_model(name, progress=False))


def run_demo(out: str | Path = "rlscale-demo", *, quick: bool = False, workers: int | None = None,
             console: Console | None = None, specs: list[Path] | None = None) -> DemoResult:
    """Run the demo's experiments (or the given spec files) into OUT/runs and write OUT/report.html."""
    from rlscale.report import build_report

    console = console or Console()
    start = time.perf_counter()
    cores = os.cpu_count() or 1
    workers = workers or min(2, cores)
    root = Path(out) / "runs"
    mode = "quick" if quick else "full"
    runs_by_spec = []
    for path in specs or demo_specs(mode):
        spec, spec_dir = load_spec(path)
        runs = expand(spec, spec_dir)
        validate_runs(runs, path)
        runs_by_spec.append((spec, runs))

    # 1. Warm start: each ladder size once (cached across demos), sizes spread over the workers.
    from rlscale.models import LADDER

    models = {run.config(root).model for _, runs in runs_by_spec for run in runs}
    sizes = sorted(m for m in models if m in LADDER)  # local checkpoints need no warm start
    console.rule(f"[bold]1. Warm start of the miniature ladder ({len(sizes)} sizes)")
    with console.status("warm-starting " + ", ".join(sizes)), ProcessPoolExecutor(
            workers, mp_context=get_context("spawn")) as pool:
        for name, path in zip(sizes, pool.map(_warm, sizes, [max(1, cores // workers)] * len(sizes)),
                              strict=True):
            console.print(f"  {name}: {path}")

    # 2. The experiments: finished runs are skipped, so an interrupted demo picks up where it was.
    sweeps = []
    executor = LocalExecutor(workers=workers, cores=cores)
    for number, (spec, runs) in enumerate(runs_by_spec, start=2):
        console.rule(f"[bold]{number}. {spec.name}: {len(runs)} runs")
        if spec.description:
            console.print(spec.description.strip())
        summary = executor.run(runs, root)
        for outcome in summary.failed:
            console.print(f"[red]{outcome.run_id} failed:[/red]\n{outcome.error}")
        sweeps.append(summary)

    # 3. Laws, prediction protocols, findings and the report.
    console.rule(f"[bold]{len(runs_by_spec) + 2}. Scaling laws, forecasts and the report")
    html, md = build_report(root, Path(out) / "report.html",
                            bootstrap_samples=100 if quick else 200)
    return DemoResult(root, Path(html), Path(md), sweeps, time.perf_counter() - start)
