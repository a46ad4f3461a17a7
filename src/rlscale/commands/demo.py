"""`rlscale demo`: the whole pipeline on the built-in miniature ladder, ending in a report."""

from pathlib import Path

import typer
from rich.console import Console


def demo(
    out: Path = typer.Option(Path("rlscale-demo"), help="Where runs and the report are written."),
    quick: bool = typer.Option(False, "--quick", help="A smaller demo (about 3 minutes)."),
    workers: int = typer.Option(None, help="Parallel runs (default: min(2, cores))."),
):
    """Warm-start the miniature ladder, run the ladder and data-reuse experiments, fit the
    scaling laws, check forecasts on held-out data and write an HTML report."""
    from rlscale.experiments.demo import run_demo

    console = Console()
    result = run_demo(out, quick=quick, workers=workers, console=console)
    failed = [o for s in result.sweeps for o in s.failed]
    console.rule("[bold]done")
    console.print(f"wall time: {result.wall_time / 60:.1f} min; runs in {result.root}")
    console.print(f"summary:   {result.report_md}")
    console.print(f"report:    {result.report_html}")
    if failed:
        console.print(f"[red]{len(failed)} runs failed[/red]")
        raise typer.Exit(1)
