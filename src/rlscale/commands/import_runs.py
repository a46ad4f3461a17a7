"""`rlscale import SRC --format csv|wandb|verl --out ROOT --experiment NAME`: runs made elsewhere
become ordinary run directories (docs/run-format.md, "Importing"). SRC may also be a folder written
by `rlscale sweep SPEC --emit verl` (with --format verl): every launched run of it comes back, its
experiment, run id, N and prompts per step taken from the folder (docs/scaling-out.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


class SourceFormat(StrEnum):
    csv = "csv"
    wandb = "wandb"
    verl = "verl"


def import_runs(
    src: Path = typer.Argument(..., exists=True,
                               help="The file to import: a CSV table, a W&B history CSV or a VeRL "
                                    "log (console output or file-logger JSONL); or, with --format "
                                    "verl, a folder of `rlscale sweep --emit verl` launches."),
    source_format: SourceFormat = typer.Option(..., "--format", "-f",
                                               help="csv: long table, one row per (run, step); "
                                                    "wandb: history export with _step; "
                                                    "verl: `step:N - key:value` lines."),
    out: Path = typer.Option(..., "--out", help="Root of the run directories "
                                                "(runs land in OUT/EXPERIMENT/RUN_ID/)."),
    experiment: str = typer.Option(None, "--experiment",
                                   help="Experiment name of the runs (needed for a file; a "
                                        "launch folder's runs keep their experiment by default)."),
    n: str = typer.Option(None, "--n", help="Model size N (e.g. 7e9 or 7B); needed for wandb and "
                                            "verl, sets N of every row for csv."),
    maps: list[str] = typer.Option([], "--map", help="FIELD=COLUMN[:1-|cumsum|*K], repeatable; "
                                                     "e.g. L=val/test_score:1- ."),
    run_id: str = typer.Option(None, "--run-id", help="wandb/verl: the run id (default: the "
                                                      "file name)."),
    eval_set: str = typer.Option("test", "--eval-set", help="Name of the eval set that mapped "
                                                            "L/pass1 columns belong to."),
    prompts_per_step: float = typer.Option(None, "--prompts-per-step",
                                           help="Fill D = step x this (prompts consumed) when "
                                                "the source has no D."),
):
    """Import runs from a CSV table, a W&B history export or a VeRL log into the run format."""
    from rlscale.runs.importers import import_csv, import_verl, import_wandb, parse_count

    console = Console()
    size = parse_count(n) if n is not None else None
    if src.is_dir():
        run_dirs = _import_launch_folder(src, source_format, out, experiment, size, run_id)
        _print_runs(console, run_dirs, src)
        return
    if experiment is None:
        raise typer.BadParameter("needed to import a file", param_hint="--experiment")
    options = dict(experiment=experiment, n=size, mapping=maps, eval_set=eval_set,
                   prompts_per_step=prompts_per_step)
    if source_format is SourceFormat.csv:
        run_dirs = import_csv(src, out, **options)
    else:
        importer = import_wandb if source_format is SourceFormat.wandb else import_verl
        run_dirs = [importer(src, out, run_id=run_id, **options)]
    _print_runs(console, run_dirs, src)


def _import_launch_folder(src: Path, source_format, out: Path, experiment: str | None,
                          size: float | None, run_id: str | None) -> list[Path]:
    from rlscale.experiments.verl import import_emitted

    if source_format is not SourceFormat.verl:
        raise typer.BadParameter("a folder is read only with --format verl (launches written by "
                                 "`rlscale sweep --emit verl`)", param_hint="SRC")
    if run_id is not None:
        raise typer.BadParameter("a launch folder's runs keep their own ids", param_hint="--run-id")
    result = import_emitted(src, out, experiment=experiment, n=size)
    if result.missing:
        typer.echo(f"not launched yet (no VeRL metrics): {', '.join(result.missing)}", err=True)
    return result.run_dirs


def _print_runs(console: Console, run_dirs: list[Path], src: Path) -> None:
    from rlscale.runs.read import read_run
    from rlscale.runs.table import short_count

    table = Table(title=f"Imported {len(run_dirs)} run(s) from {src}")
    for column in ("run directory", "N", "steps", "evals", "eval sets"):
        table.add_column(column)
    for run_dir in run_dirs:
        run = read_run(run_dir)
        sets = ", ".join(map(str, run.evals["eval_set"].unique())) if len(run.evals) else ""
        size_text = short_count(run.meta["N"]) if run.meta.get("N") is not None else "?"
        table.add_row(str(run_dir), size_text,
                      str(len(run.steps)), str(len(run.evals)), sets)
    console.print(table)
