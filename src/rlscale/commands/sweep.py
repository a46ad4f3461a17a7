"""`rlscale sweep SPEC`: run every run of an experiment spec, skipping finished ones; with
`--emit verl`, write every run as a VeRL launch instead (rlscale.experiments.verl)."""

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlscale.config import parse_override


def sweep(
    spec: Path = typer.Argument(..., help="Experiment spec YAML (name, base, grid, overrides)."),
    overrides: list[str] = typer.Argument(None, help="key=value training-config overrides for every run."),
    executor: str = typer.Option("local", help="local or ray."),
    workers: int = typer.Option(1, help="Local executor: parallel worker processes."),
    address: str = typer.Option(None, help="Ray: cluster address (default: start Ray locally)."),
    threads: int = typer.Option(1, help="Ray: CPUs (torch threads) per run."),
    out: Path = typer.Option(Path("runs"), help="Run root; runs land in OUT/<experiment>/<run_id>/ "
                                                "(with --emit: OUT/<run_id>/)."),
    emit: str = typer.Option(None, "--emit", help="Train nothing; write every run as a launch for "
                                                  "this engine: 'verl' (data parquet, launch.sh, "
                                                  "reward.py; docs/scaling-out.md)."),
    verl_version: str = typer.Option("0.9", "--verl-version",
                                     help="--emit verl: '0.9' (VeRL 0.9) or '0.6' (0.6-0.8)."),
):
    """Run an experiment grid; finished runs are skipped and interrupted ones resumed."""
    from rlscale.experiments import LocalExecutor, RayExecutor, expand, load_spec
    from rlscale.experiments.spec import validate_runs

    console = Console()
    extra = dict(parse_override(item) for item in overrides or [])
    if emit is not None:
        _emit(console, spec, out, extra, emit, verl_version)
        return
    exp, spec_dir = load_spec(spec)
    runs = expand(exp, spec_dir, extra)
    validate_runs(runs, spec)
    if executor == "local":
        runner = LocalExecutor(workers=workers)
    elif executor == "ray":
        runner = RayExecutor(address=address, threads=threads)
    else:
        raise typer.BadParameter("executor must be 'local' or 'ray'")
    console.print(f"[bold]{exp.name}[/bold]: {len(runs)} runs -> {out / exp.name}")
    summary = runner.run(runs, out)
    table = Table("run", "status", "run dir")
    for o in summary.outcomes:
        table.add_row(o.run_id, o.status, o.run_dir)
    console.print(table)
    for o in summary.failed:
        console.print(f"[red]{o.run_id} failed:[/red]\n{o.error}")
    if summary.failed:
        raise typer.Exit(1)


ENGINES = ("verl",)


def _emit(console: Console, spec: Path, out: Path, extra: dict, engine: str,
          verl_version: str) -> None:
    if engine not in ENGINES:
        raise typer.BadParameter(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})",
                                 param_hint="--emit")
    from rlscale.experiments.verl import emit_verl

    emitted = emit_verl(spec, out, overrides=extra, verl_version=verl_version)
    table = Table("run", "steps", "train prompts (distinct)", "eval sets", "launch",
                  title=f"VeRL {verl_version} launches of {spec} -> {out}")
    for run in emitted:
        sets = ", ".join(f"{name} ({rows})" for name, rows in run.eval_rows.items())
        table.add_row(run.run_id, str(run.steps), f"{run.train_rows} ({run.distinct_prompts})",
                      sets, f"bash {run.launch}")
    console.print(table)
    console.print(f"then: rlscale import {out} --format verl --out runs")
