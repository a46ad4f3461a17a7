"""`rlscale import SRC --format csv|wandb|verl --out ROOT --experiment NAME`: runs made elsewhere
become ordinary run directories (docs/run-format.md, "Importing")."""

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
    src: Path = typer.Argument(..., exists=True, dir_okay=False,
                               help="The file to import: a CSV table, a W&B history CSV or a VeRL "
                                    "log (console output or file-logger JSONL)."),
    source_format: SourceFormat = typer.Option(..., "--format", "-f",
                                               help="csv: long table, one row per (run, step); "
                                                    "wandb: history export with _step; "
                                                    "verl: `step:N - key:value` lines."),
    out: Path = typer.Option(..., "--out", help="Root of the run directories "
                                                "(runs land in OUT/EXPERIMENT/RUN_ID/)."),
    experiment: str = typer.Option(..., "--experiment", help="Experiment name of the runs."),
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
    from rlscale.runs.read import read_run
    from rlscale.runs.table import short_count

    console = Console()
    size = parse_count(n) if n is not None else None
    options = dict(experiment=experiment, n=size, mapping=maps, eval_set=eval_set,
                   prompts_per_step=prompts_per_step)
    if source_format is SourceFormat.csv:
        run_dirs = import_csv(src, out, **options)
    else:
        importer = import_wandb if source_format is SourceFormat.wandb else import_verl
        run_dirs = [importer(src, out, run_id=run_id, **options)]
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
