"""`rlscale predict DATA --protocol inter|intra|loso`: fit on part of the data, predict the rest,
report errors on the held-out points only (MAPE, RMSE, R^2 per held-out size and overall).
`rlscale predict RUN_DIR --until STEP` (or --until-compute / --until-data): forecast the rest of a
run in progress from its own points (and a fitted ladder), with a band and a drift check."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

PROTOCOLS = ("inter", "intra", "loso")
DEFAULT_LAWS = {
    # Fully out of sample needs a parametric E(N): None is laws.validate.predictive_law, the
    # joint C/D law for C when the table has D, else the saturating E(N).
    "inter": [None],
    "inter_refit": ["loglinear_kn"],  # the paper's variant: free intercepts, E(target) refitted
    "intra": ["loglinear_kn"],
    "loso": ["loglinear_kn:e_form=saturating", "additive", "decomposition"],
}


def predict(
    data: Path = typer.Argument(..., help="A run root (or run dir) or a CSV with N, C and/or D, L "
                                          "[, run, step]."),
    protocol: str = typer.Option(None, help="inter (fit smaller sizes, predict the target size), intra "
                                            "(fit the first fraction of each curve, predict the rest) or "
                                            "loso (leave one size out, compare laws)."),
    until: float = typer.Option(None, help="Forecast a run in progress (DATA: one run directory) up "
                                           "to this step."),
    until_compute: float = typer.Option(None, help="... or up to this compute C (FLOPs)."),
    until_data: float = typer.Option(None, help="... or up to this many prompts D."),
    ladder: Path = typer.Option(None, help="With --until: a fitted ladder law (rlscale fit -o FIT.json) "
                                           "whose k(N) gives the run's slope (its intercept is "
                                           "fitted on the run)."),
    check_last: int = typer.Option(3, min=0, help="With --until: the last K points are held back "
                                                  "to check the forecast (drift check)."),
    law: list[str] = typer.Option(None, help="Law, optionally with options: loglinear_kn, "
                                             "'loglinear_kn:e_form=saturating', additive, ... Repeat "
                                             "for loso. Default: inter the joint C/D law for C when the "
                                             "data has D (else loglinear_kn:e_form=saturating; "
                                             "loglinear_kn with --refit-intercept), intra loglinear_kn, "
                                             "loso saturating loglinear_kn, additive, decomposition."),
    x: str = typer.Option("C", "--x", help="The resource axis: C, D or T."),
    fraction: float = typer.Option(0.25, help="intra: the fraction of each curve that is fitted."),
    target: str = typer.Option(None, help="inter: the size to predict (default: the largest), e.g. 72B."),
    refit_intercept: bool = typer.Option(False, "--refit-intercept", help="inter/loso: the paper's "
                                         "variant, E of the held-out size fitted on its own points "
                                         "(partially in-sample; inter also reports the fully "
                                         "out-of-sample prediction)."),
    bootstrap: int = typer.Option(0, help="inter/intra: K bootstrap refits of the training part; "
                                          "reports intervals and the held-out coverage of the bands."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    level: float = typer.Option(0.95, help="Bootstrap interval level."),
    warmup: int = typer.Option(0, help="Drop steps 1..K before fitting and predicting."),
    eval_set: str = typer.Option(None, help="Run root: which eval set gives L."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Validate a law by prediction: every error is on points the fit never saw (or, for
    --refit-intercept, labelled as partially in-sample)."""
    from rlscale.commands.fit import parse_sizes
    from rlscale.laws import LawWarning, load_law_table
    from rlscale.laws.validate import run_protocol

    console = Console(stderr=as_json)
    targets = {"step": until, "C": until_compute, "D": until_data}
    given = {kind: value for kind, value in targets.items() if value is not None}
    if given:
        if protocol is not None or len(given) > 1:
            raise typer.BadParameter("give one of --until, --until-compute, --until-data, and no "
                                     "--protocol (a forecast is not a validation protocol)")
        (kind, value), = given.items()
        report = _forecast(data, kind, value, x, ladder, check_last, bootstrap or 200, seed,
                           warmup, eval_set)
        if as_json:
            typer.echo(to_json(report))
        else:
            print_forecast(console, report)
        return
    if ladder is not None:
        raise typer.BadParameter("--ladder applies to a forecast (--until ...)")
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"protocol must be one of {', '.join(PROTOCOLS)} (or forecast a "
                                 "run with --until STEP)")
    if bootstrap and protocol == "loso":
        raise typer.BadParameter("--bootstrap applies to the inter and intra protocols")
    key = "inter_refit" if protocol == "inter" and refit_intercept else protocol
    laws = list(law) if law else DEFAULT_LAWS[key]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LawWarning)
        table = load_law_table(data, eval_set=eval_set)
        target_size = parse_sizes(target)[0] if target else None
        report = run_protocol(table, protocol, laws, x, fraction=fraction, target=target_size,
                              refit_intercept=refit_intercept, warmup=warmup,
                              bootstrap_n=bootstrap, seed=seed, level=level)
    for message in sorted({str(w.message) for w in caught}):
        console.print(f"[yellow]warning:[/yellow] {message}")
    if as_json:
        typer.echo(to_json(report))
    else:
        print_report(console, report)


def _forecast(data, kind, value, x, ladder, check_last, n, seed, warmup, eval_set) -> dict:
    from rlscale.laws import FittedLaw, load_law_table
    from rlscale.laws.forecast import forecast_run

    x = kind if kind in ("C", "D") else x
    fitted = FittedLaw.from_json(ladder) if ladder is not None else None
    table = load_law_table(data, eval_set=eval_set)
    return forecast_run(table, value, kind=kind, x=x, ladder=fitted, check_last=check_last,
                        n=n, seed=seed, warmup=warmup).to_dict()


def print_forecast(console: Console, report: dict) -> None:
    from rlscale.laws import format_size
    from rlscale.laws.validate import short_label

    t = report["target"]
    console.print(f"[bold]forecast[/bold] of the {format_size(report['N'])} run along {report['x']}: "
                  f"{short_label(report['law'])}")
    table = Table("step", report["x"], "L predicted", f"{report['level']:.0%} band",
                  title="the rest of the run")
    for row in report["path"]:
        table.add_row(f"{row['step']:g}", f"{row['X']:.4g}", f"{row['L_pred']:.4f}",
                      f"[{row['lo']:.4f}, {row['hi']:.4f}]")
    console.print(table)
    where = f"step {t['step']:g}" if t["kind"] == "step" else \
        f"{t['kind']} = {t['value']:.4g} (about step {t['step']:.0f})"
    console.print(f"at {where}: L = [bold]{t['L_pred']:.4f}[/bold] in [{t['lo']:.4f}, "
                  f"{t['hi']:.4f}]")
    own = report.get("own_line")
    if own:
        console.print(f"the run's own line instead: L = {own['L_pred']:.4f} in [{own['lo']:.4f}, "
                      f"{own['hi']:.4f}]")
    check = report["check"]
    if check:
        outside = [f"{s:g}" for s, ok in zip(check["steps"], check["inside"], strict=True) if not ok]
        if check["drifting"]:
            console.print(f"[red]drift:[/red] the last {check['points']} points (steps "
                          f"{', '.join(outside)}) all fall outside the band forecast without them: "
                          "the run is leaving this law")
        elif outside:
            console.print(f"[yellow]check:[/yellow] of the last {check['points']} points, steps "
                          f"{', '.join(outside)} fall outside the band forecast without them")
        else:
            console.print(f"check: the last {check['points']} points fall inside the band "
                          "forecast without them")
    for note in report["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")


def to_json(report: dict) -> str:
    """Strict JSON: NaN (an undefined R^2 on a flat held-out curve) becomes null."""

    def clean(value):
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if hasattr(value, "item"):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(clean(report))


def print_report(console: Console, report: dict) -> None:
    from rlscale.laws import format_size
    from rlscale.laws.validate import short_label

    if report["protocol"] == "loso":
        table = Table("law", "folds", "mean MAPE", "mean RMSE", "mean R^2",
                      title=f"leave-one-size-out on {report['x']} (held-out errors)")
        for label, s in report["summary"].items():
            table.add_row(label, str(s["folds"]), f"{100 * s['mape']:.2f}%", f"{s['rmse']:.4f}",
                          f"{s['r2']:.3f}")
        console.print(table)
        for label, reason in report["failures"].items():
            console.print(f"[yellow]{label}:[/yellow] {reason}")
        if report["best"]:
            console.print(f"best (lowest mean held-out RMSE): [bold]{report['best']}[/bold]")
        return
    for entry in [report, report.get("fully_out_of_sample")]:
        if entry is None:
            continue
        if "error" in entry:
            console.print(f"[yellow]fully out of sample ({short_label(entry['law'])}):[/yellow] "
                          f"{entry['error']}")
            continue
        console.print(f"[bold]{entry['protocol']}[/bold] {short_label(entry['law'])} on {entry['x']}: "
                      f"{entry['note']}")
        params = Table("parameter", "value", title="fitted parameters")
        for name, value in entry["params"].items():
            if isinstance(value, dict):
                value = ", ".join(f"{format_size(float(k))}: {v:.4g}" for k, v in value.items())
            else:
                value = f"{value:.6g}"
            params.add_row(name, value)
        console.print(params)
        errors = Table("held-out size", "points", "MAPE", "RMSE", "R^2", title="held-out errors")
        rows = [*((format_size(float(k)), v) for k, v in entry["heldout"]["by_size"].items()),
                ("overall", entry["heldout"]["overall"])]
        for name, e in rows:
            r2 = "n/a" if e["r2"] is None or math.isnan(e["r2"]) else f"{e['r2']:.4f}"
            errors.add_row(name, str(e["n"]), f"{100 * e['mape']:.2f}%", f"{e['rmse']:.4f}", r2)
        console.print(errors)
    boot = report.get("bootstrap")
    if boot:
        table = Table("quantity", "estimate", f"{boot['level']:.0%} lo", "hi",
                      title=f"bootstrap ({boot['n']} refits; {boot['resampling']})")
        for name, v in boot["intervals"].items():
            table.add_row(name, f"{v['estimate']:.5g}", f"{v['lo']:.5g}", f"{v['hi']:.5g}")
        console.print(table)
        cov = boot["coverage"]
        if cov is None:
            console.print(f"no band: {boot['coverage_note']}")
        else:
            console.print(f"held-out points inside the {cov['level']:.0%} {cov['kind']} band: "
                          f"{cov['overall']:.1%} of {cov['n']}")
