"""`rlscale sweep SPEC`: run every run of an experiment spec, skipping finished ones."""

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
    out: Path = typer.Option(Path("runs"), help="Run root; runs land in OUT/<experiment>/<run_id>/."),
):
    """Run an experiment grid; finished runs are skipped and interrupted ones resumed."""
    from rlscale.experiments import LocalExecutor, RayExecutor, expand, load_spec
    from rlscale.experiments.spec import validate_runs

    console = Console()
    extra = dict(parse_override(item) for item in overrides or [])
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
