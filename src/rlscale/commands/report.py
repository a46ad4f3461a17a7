"""`rlscale report RUN_ROOT [-o FILE]`: fit, check the paper's findings, write the HTML report."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run_root: Path = typer.Argument(..., help="A run root: directories with meta.json, "
                                              "steps.jsonl and evals.jsonl."),
    output: Path | None = typer.Option(None, "-o", "--output",
                                       help="The HTML file to write (default RUN_ROOT/report.html)"
                                            "; a Markdown summary is written beside it."),
    figures: Path | None = typer.Option(None, "--figures",
                                        help="Also save every figure as PNG in this directory."),
    bootstrap: int = typer.Option(200, "--bootstrap", min=0,
                                  help="Bootstrap refits for the intervals and the k(N) band "
                                       "(0: no intervals, faster)."),
    warmup: int = typer.Option(0, "--warmup", min=0,
                               help="Warm-up clip: leave steps 1..WARMUP out of every fit "
                                    "(step 0 never is fitted)."),
):
    """Build the self-contained HTML report (figures, fits, held-out errors, findings)."""
    from rlscale.report.html import build_report

    html_path, md_path = build_report(run_root, output, figures_dir=figures,
                                      bootstrap_samples=bootstrap, warmup=warmup)
    typer.echo(f"report: {html_path}")
    typer.echo(f"summary: {md_path}")
    typer.echo(f"data:    {html_path.with_suffix('.json')}")
