"""`rlscale plan FIT.json --budget-flops X | --budget-prompts D | --target-loss L`: the best model
size for a budget or a target loss; `rlscale plan --reuse TAU.csv`: how much data reuse is safe."""

from __future__ import annotations

import math
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
    plot: Path = typer.Option(None, "--plot", help="Write a figure (PNG, PDF, SVG by suffix): predicted L "
                                                  "against budget per size, bands, the frontier."),
    with_frontier: bool = typer.Option(False, "--frontier", help="Also the frontier: the best size "
                                                                 "per budget on a grid (in --json)."),
    budget_range: str = typer.Option(None, help="The frontier's budgets 'LOW,HIGH' (FLOPs, or prompts "
                                                "with --budget-prompts; default: around the asked "
                                                "budget and the data)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Plan a run from a fitted law, or advise on data reuse from a tau experiment."""
    from rlscale.commands.fit import parse_sizes
    from rlscale.commands.predict import to_json
    from rlscale.laws.plan import plan_from_files

    console = Console(stderr=as_json)
    if reuse is not None:
        if plot is not None or with_frontier or budget_range is not None:
            raise typer.BadParameter("--plot, --frontier and --budget-range are for a plan from "
                                     "FIT.json, not --reuse")
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
        budgets = _parse_range(budget_range)
        if plot is not None:
            from rlscale.report.plan_figure import figure_format

            figure_format(plot)  # a bad name is refused before any work
        result = plan_from_files(fit_json, goal, value, sizes=parse_sizes(sizes), size_range=span,
                                 tokens_per_prompt=tokens_per_prompt, data=data, bootstrap_n=bootstrap,
                                 seed=seed, prompts_per_step=prompts_per_step,
                                 with_frontier=with_frontier or plot is not None,
                                 budget_range=budgets, progress=True)
        if plot is not None:
            from rlscale.report.plan_figure import plan_figure

            plan_figure(result.frontier, result, plot)
        report = result.to_dict()
    if as_json:
        typer.echo(to_json(report))
    elif reuse is not None:
        print_reuse(console, report)
    else:
        print_plan(console, report)
        if "frontier" in report:
            print_frontier(console, report)
    if plot is not None:
        console.print(f"figure: {plot}")


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--budget-range is LOW,HIGH (two numbers), got {text!r}") from None
    return low, high


def _reuse(path: Path, alpha: float, final_fraction: float) -> dict:
    from rlscale.laws.plan import load_tau_table, reuse_advice

    return reuse_advice(load_tau_table(path), alpha=alpha, final_fraction=final_fraction).to_dict()


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


def print_frontier(console: Console, report: dict, rows: int = 9) -> None:
    """The optimal size at a few budgets of the frontier's grid (all of it is in --json)."""
    from rlscale.laws import format_size

    unit = "C (FLOPs)" if report["frontier_kind"] == "compute" else "D (prompts)"
    per_budget = list({r["budget"]: r for r in report["frontier"]}.values())
    step = max(1, math.ceil(len(per_budget) / rows))
    shown = per_budget[::step] + ([per_budget[-1]] if (len(per_budget) - 1) % step else [])
    level = report["frontier_level"]
    table = Table(unit, "best N", "L", "continuous N", "L", title="frontier: the best size per budget"
                  + (f" (bands at {level:.0%} in --json)" if level else ""))
    for r in shown:
        table.add_row(f"{r['budget']:.3g}", format_size(r["best_N"]) if r["best_N"] else "-",
                      _fmt(r["best_L"]), format_size(r["N_opt"]) if r["N_opt"] else "-",
                      _fmt(r["L_opt"]))
    console.print(table)
    for note in report["frontier_notes"]:
        console.print(f"[yellow]frontier note:[/yellow] {note}")


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
