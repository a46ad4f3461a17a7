"""`rlscale plan FIT.json --budget-flops X | --budget-prompts D | --target-loss L`: the best model
size for a budget or a target loss; `rlscale plan --reuse TAU.csv`: how much data reuse is safe."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def plan(
    fit_json: Path = typer.Argument(None, help="A fitted law (rlscale fit -o FIT.json), or a bootstrap "
                                               "JSON (its replicates give the bands)."),
    budget_flops: float = typer.Option(None, help="Compute budget C in FLOPs (paper definition 6 N T)."),
    budget_prompts: float = typer.Option(None, help="Data budget D in prompts."),
    target_loss: float = typer.Option(None, help="Target test loss L = 1 - pass@1: cheapest (N, C)."),
    sizes: str = typer.Option(None, help="Candidate sizes, comma-separated (default: the fitted ones)."),
    size_range: str = typer.Option(None, help="Continuous range 'LOW,HIGH' (default: the candidates')."),
    tokens_per_prompt: float = typer.Option(None, help="Tokens per prompt (prompt + all its rollouts): "
                                                       "phi = 6 x this converts C <-> D."),
    data: Path = typer.Option(None, help="A run table/CSV with N, C, D: estimates phi = C/(N D) and, "
                                         "with --bootstrap, the refits for bands."),
    bootstrap: int = typer.Option(0, help="With --data: K bootstrap refits of the fit's law for bands."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    prompts_per_step: int = typer.Option(512, min=1, help="Prompts per step (steps = D / this)."),
    reuse: Path = typer.Option(None, help="A tau experiment (CSV: tau, step, L[, run]): reuse advice."),
    alpha: float = typer.Option(0.05, help="--reuse: significance level of the test."),
    final_fraction: float = typer.Option(0.1, help="--reuse: final share of steps averaged."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Plan a run from a fitted law, or advise on data reuse from a tau experiment."""
    from rlscale.commands.fit import parse_sizes
    from rlscale.commands.predict import to_json

    console = Console(stderr=as_json)
    if reuse is not None:
        report = _reuse(reuse, alpha, final_fraction)
    else:
        goals = {"compute": budget_flops, "data": budget_prompts, "target_loss": target_loss}
        given = {goal: value for goal, value in goals.items() if value is not None}
        if fit_json is None or len(given) != 1:
            raise typer.BadParameter("give FIT.json and exactly one of --budget-flops, "
                                     "--budget-prompts, --target-loss (or --reuse TAU.csv)")
        (goal, value), = given.items()
        span = parse_sizes(size_range)
        if span is not None and len(span) != 2:
            raise typer.BadParameter("--size-range is LOW,HIGH")
        report = _plan(fit_json, goal, value, parse_sizes(sizes), span, tokens_per_prompt, data,
                       bootstrap, seed, prompts_per_step)
    if as_json:
        typer.echo(to_json(report))
    elif reuse is not None:
        print_reuse(console, report)
    else:
        print_plan(console, report)


def _plan(fit_json, goal, value, sizes, span, tokens_per_prompt, data, n_boot, seed, prompts_per_step):
    import json

    from rlscale.errors import LawError
    from rlscale.laws import FittedLaw, load_law_table
    from rlscale.laws.base import pooled_phi
    from rlscale.laws.bootstrap import BootstrapResult, bootstrap
    from rlscale.laws.plan import plan as make_plan

    try:
        content = json.loads(Path(fit_json).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LawError(f"{fit_json}: not a readable fitted-law JSON ({err})") from None
    boot = BootstrapResult.from_dict(content) if "replicates" in content else None
    fitted = boot.fitted if boot else FittedLaw.from_dict(content)
    phi = None
    if data is not None:
        table = load_law_table(data)
        if tokens_per_prompt is None:
            phi = pooled_phi(table)  # one phi for all sizes (None without both C and D)
        if n_boot:
            boot = bootstrap(table, fitted.estimator(), fitted.x, n=n_boot, seed=seed, progress=True)
    elif n_boot:
        raise LawError("--bootstrap needs --data (the runs to resample)")
    result = make_plan(fitted, goal, value, sizes=sizes, phi=phi, tokens_per_prompt=tokens_per_prompt,
                       prompts_per_step=prompts_per_step, bootstrap=boot,
                       size_range=tuple(span) if span else None)
    return result.to_dict()


def _reuse(path: Path, alpha: float, final_fraction: float) -> dict:
    from rlscale.laws.plan import reuse_advice

    return reuse_advice(load_tau_table(path), alpha=alpha, final_fraction=final_fraction).to_dict()


def load_tau_table(path: Path):
    """A tau experiment as rows (tau, run, step, L): a CSV, or a run root whose runs' meta has tau."""
    import pandas as pd

    from rlscale.errors import DataError

    if path.is_dir():
        from rlscale.runs import RunTable

        runs = RunTable.load(path)
        table = runs.law_table()
        tau = runs.df.drop_duplicates("run").set_index("run")["tau"]
        return table.assign(tau=table["run"].map(tau))
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the tau table ({err})", path=path) from None


def _fmt(value, spec=".4g") -> str:
    return "-" if value is None else format(value, spec)


def print_plan(console: Console, report: dict) -> None:
    from rlscale.laws import format_size

    what = {"compute": "compute budget C = {:.3g} FLOPs", "data": "data budget D = {:.4g} prompts",
            "target_loss": "target loss L = {:.4g}"}[report["goal"]].format(report["value"])
    phi = f"phi = {report['phi']:.4g}" if report["phi"] else "phi unknown (C <-> D not converted)"
    console.print(f"[bold]{what}[/bold] with {report['law']} on {report['x']}; {phi}")
    table = Table("N", "C (FLOPs)", "D (prompts)", "steps", "L", "band", title="candidate sizes")
    best = report["best"]
    for o in report["options"]:
        band = f"[{_fmt(o['L_lo'])}, {_fmt(o['L_hi'])}]" if o["L_lo"] is not None else ""
        if o["C_lo"] is not None:
            band = f"C in [{o['C_lo']:.3g}, {o['C_hi']:.3g}]"
        mark = " *" if best and o["N"] == best["N"] else ""
        table.add_row(format_size(o["N"]) + mark, _fmt(o["C"], ".3g"), _fmt(o["D"], ".4g"),
                      _fmt(o["steps"], ".4g"), _fmt(o["L"]), band)
    console.print(table)
    if best:
        console.print(f"best candidate: [bold]{format_size(best['N'])}[/bold] (L {best['L']:.4g}, "
                      f"C {_fmt(best['C'], '.3g')})")
    c = report["continuous"]
    if c:
        low, high = report["size_range"]
        console.print(f"continuous optimum in [{format_size(low)}, {format_size(high)}]: "
                      f"[bold]{format_size(c['N'])}[/bold] (L {c['L']:.4g}, C {_fmt(c['C'], '.3g')}, "
                      f"D {_fmt(c['D'], '.4g')}, steps {_fmt(c['steps'], '.4g')})")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")


def print_reuse(console: Console, report: dict) -> None:
    table = Table("tau", "final L", "std", "n", "gap vs baseline", "p (worse)", "verdict",
                  title="data reuse: final test loss per reuse factor")
    for row in report["per_tau"]:
        verdict = "[red]worse[/red]" if row["worse"] else "ok"
        table.add_row(f"{row['tau']:g}", f"{row['final_L']:.4f}", f"{row['std']:.4f}", str(row["n"]),
                      f"{row['gap']:+.4f}", f"{row['p_value']:.3g}", verdict)
    console.print(table)
    console.print(f"test: {report['test']}")
    console.print(f"recommendation: reuse each prompt up to [bold]tau = {report['recommended_tau']:g}[/bold] "
                  "times; larger tau is significantly worse (or untested)")
