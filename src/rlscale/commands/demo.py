"""`rlscale demo`: the whole pipeline on the built-in miniature family, ending in a report."""

from pathlib import Path

import typer
from rich.console import Console


def demo(
    out: Path = typer.Option(Path("rlscale-demo"), help="Where runs and the report are written."),
    quick: bool = typer.Option(False, "--quick", help="A smaller demo (about 3 minutes)."),
    full: bool = typer.Option(
        False, "--full", help="The whole paper at miniature scale (about an hour: 63.5 minutes measured; docs/miniature.md)."),
    rebuild_family: bool = typer.Option(
        False, "--rebuild-family",
        help="Pretrain the family here instead of using the shipped weights (about 2 hours on 2 cores)."),
    workers: int = typer.Option(None, help="Parallel runs (default: min(2, cores))."),
):
    """Post-train the pretrained miniature family with GRPO, run the ladder and data-reuse
    experiments, fit the scaling laws, check forecasts on held-out data and write a report."""
    from rlscale.experiments.demo import run_demo

    if quick and full:
        raise typer.BadParameter("choose one of --quick and --full", param_hint="--quick/--full")
    console = Console()
    mode = "quick" if quick else "full" if full else "default"
    result = run_demo(out, mode=mode, workers=workers, console=console,
                      rebuild_family=rebuild_family)
    failed = [o for s in result.sweeps for o in s.failed]
    console.rule("[bold]done")
    console.print(f"runs in    {result.root}")
    console.print(f"summary:   {result.report_md}")
    console.print(f"report:    {result.report_html} (machine-readable: {result.report_json})")
    phases = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in result.timing.items())
    console.print(f"wall time: {result.wall_time / 60:.1f} min ({phases})")
    if failed:
        console.print(f"[red]{len(failed)} runs failed[/red]")
        raise typer.Exit(1)
