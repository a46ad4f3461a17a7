"""`rlscale fit DATA --law NAME --x C|D|T`: fit a scaling law to a run root or a CSV."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from rlscale import units


def parse_sizes(text: str | None) -> list[float] | None:
    """`rlscale.units.parse_sizes` ('0.5B,1.5B,3e9' -> [5e8, 1.5e9, 3e9]) for a CLI option: a bad
    size is a typer.BadParameter. `rlscale plan` and `rlscale predict` use it too."""
    try:
        return units.parse_sizes(text)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


def fit(
    data: Path = typer.Argument(..., help="A run root (or run dir) or a CSV with N, C and/or D, L "
                                          "[, run, step]."),
    law: str = typer.Option("loglinear_kn", help="loglinear_kn, loglinear, decomposition, sigmoid "
                                                 "or additive."),
    x: str = typer.Option("C", "--x", help="The resource axis: C (compute), D (data) or T (tokens)."),
    space: str = typer.Option("linear", help="Fit residuals of L (linear, the paper) or log10 L (log)."),
    loss: str = typer.Option("linear", help="linear (least squares) or huber (robust)."),
    warmup: int = typer.Option(0, help="Drop steps 1..K (warm-up) before fitting."),
    sizes: str = typer.Option(None, help="Only these sizes, comma-separated (5e8,1.5e9 or 0.5B,1.5B)."),
    e_form: str = typer.Option(None, help="loglinear_kn: free (an intercept per size, the paper), "
                                          "saturating (E(N) = Emax N/(N+N1)) or joint (the C-law "
                                          "tied to the D-law by C = N D phi). Default: joint for C "
                                          "when the data has D too, else free."),
    eval_set: str = typer.Option(None, help="Run root: which eval set gives L (default: the table's)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    output: Path = typer.Option(None, "-o", "--output", help="Save the fitted law (JSON) here; "
                                                            "`rlscale plan` reads it."),
):
    """Fit a law (step 0 dropped, repeated runs averaged, sizes weighted equally); print its
    parameters, pooled and per-size R^2 (in-sample), RMSE, and any parameter on a bound."""
    from rlscale.laws import LawWarning, get_law, load_law_table
    from rlscale.laws.base import pooled_phi
    from rlscale.laws.validate import intercept_options

    console = Console(stderr=as_json)
    options = {"space": space, "loss": loss}
    if law != "loglinear_kn" and e_form not in (None, "free"):
        raise typer.BadParameter("--e-form applies only to --law loglinear_kn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LawWarning)
        table = load_law_table(data, eval_set=eval_set)
        chosen = parse_sizes(sizes)
        if law == "loglinear_kn":
            options.update(intercept_options(table, x, e_form, chosen))
        fitted = get_law(law, **options).fit(table, x=x, warmup=warmup, sizes=chosen)
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {warning.message}")
    phi = pooled_phi(table)
    if phi is not None:  # C = N D phi: lets `rlscale plan` convert compute, prompts and tokens
        fitted.metrics["phi"] = phi
    if output is not None:
        fitted.to_json(output)
    if as_json:
        typer.echo(json.dumps(fitted.to_dict()))
    else:
        print_fit(console, fitted)
        if output is not None:
            console.print(f"saved {output}")


def print_fit(console: Console, fitted) -> None:
    m = fitted.metrics
    shown = ", ".join(f"{k}={_shown(v)}" for k, v in fitted.options.items())
    console.print(f"[bold]{fitted.law}[/bold] on {fitted.x}  ({shown}), "
                  f"{m['n_points']} points, {m['n_sizes']} sizes")
    scalars = Table("parameter", "value", title="shared parameters")
    per_size = {name: value for name, value in fitted.params.items() if isinstance(value, dict)}
    for name, value in fitted.params.items():
        if not isinstance(value, dict):
            flag = "  [red](on bound)[/red]" if name in fitted.bounds_hit else ""
            scalars.add_row(name, f"{value:.6g}{flag}")
    if scalars.row_count:
        console.print(scalars)
    sizes = fitted.sizes
    columns = ["N", *per_size]
    has_k = "Kmax" in fitted.params
    if has_k:
        columns.append("k(N)")
    table = Table(*columns, "R^2 (in-sample)", title="per size")
    for size in sizes:
        row = [units.format_size(size)] + [f"{per_size[name][size]:.6g}" for name in per_size]
        if has_k:
            row.append(f"{float(fitted.k(size)):.5f}")
        table.add_row(*row, f"{m['r2_per_size'].get(size, float('nan')):.4f}")
    console.print(table)
    console.print(f"pooled R^2 {m['r2']:.5f}   RMSE {m['rmse']:.5f}   MAPE {100 * m['mape']:.3f}%   "
                  f"objective {m['objective']:.4g}")
    if fitted.bounds_hit:
        console.print(f"[yellow]on a bound:[/yellow] {', '.join(fitted.bounds_hit)}")


def _shown(value) -> str:
    """An option as a person reads it: a mapping per size (the joint law's phi) by its values."""
    if isinstance(value, dict):
        from rlscale.laws import format_size

        return "per size " + ", ".join(f"{format_size(float(n))}: {v:.4g}" for n, v in value.items())
    return str(value)
