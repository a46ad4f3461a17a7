"""`rlscale predict DATA --protocol inter|intra|loso`: fit on part of the data, predict the rest,
report errors on the held-out points only (MAPE, RMSE, R^2 per held-out size and overall)."""

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
    protocol: str = typer.Option(..., help="inter (fit smaller sizes, predict the target size), intra "
                                           "(fit the first fraction of each curve, predict the rest) or "
                                           "loso (leave one size out, compare laws)."),
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

    console = Console(stderr=as_json)
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"protocol must be one of {', '.join(PROTOCOLS)}")
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


def run_protocol(table, protocol, laws, x, *, fraction=0.25, target=None, refit_intercept=False,
                 warmup=0, bootstrap_n=0, seed=0, level=0.95) -> dict:
    """The JSON report of one protocol: the result's fields (law, params, heldout, ...), plus
    `fully_out_of_sample` for inter --refit-intercept and `bootstrap` (intervals, coverage)."""
    from rlscale.errors import LawError
    from rlscale.laws.validate import inter_model, intra_run, leave_one_size_out

    if protocol == "loso":
        return leave_one_size_out(table, laws, x, refit_intercept=refit_intercept,
                                  warmup=warmup).to_dict()
    if len(laws) != 1:
        raise LawError(f"--protocol {protocol} takes one --law, got {len(laws)}")
    if protocol == "intra":
        result = intra_run(table, laws[0], x, fraction=fraction, warmup=warmup)
    else:
        result = inter_model(table, laws[0], x, target=target, refit_intercept=refit_intercept,
                             warmup=warmup)
    report = result.to_dict()
    if protocol == "inter" and refit_intercept:
        oos_law = _parametric_counterpart(laws[0])
        try:
            report["fully_out_of_sample"] = inter_model(table, oos_law, x, target=target,
                                                        warmup=warmup).to_dict()
        except LawError as err:
            report["fully_out_of_sample"] = {"law": oos_law or "predictive", "error": str(err)}
    if bootstrap_n:
        report["bootstrap"] = _bootstrap_report(table, result, x, bootstrap_n, seed, level, warmup)
    return report


def _parametric_counterpart(spec: str) -> str | None:
    """The fully out-of-sample twin of the refit-intercept law: plain loglinear_kn gets the
    default predictive law (None: joint C/D or saturating E(N)), loglinear_kn with options a
    saturating E(N); any other law is used as it is."""
    name, _, options = spec.partition(":")
    if name != "loglinear_kn":
        return spec
    if not options:
        return None
    kept = [item for item in options.split(",") if item and not item.startswith("e_form")]
    return f"{name}:{','.join([*kept, 'e_form=saturating'])}"


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


def _bootstrap_report(table, result, x, n, seed, level, warmup) -> dict:
    from rlscale.laws.bootstrap import bootstrap, coverage, describe_method
    from rlscale.laws.validate import resolve_law

    # Resample the training part: its raw rows where runs and steps are known (so whole runs can
    # be drawn), else its curve points.
    train = result.train
    if "step" in table.columns and table["step"].notna().all():
        keys = train.to_frame()[["N", "step"]]
        train = table.merge(keys, on=["N", "step"], how="inner")
    boot = bootstrap(train, resolve_law(result.law), x, n=n, seed=seed, level=level, warmup=warmup,
                     progress=True)
    if result.in_sample_parameters:  # the refit-intercept variant: refit E(target) in every replicate
        from rlscale.laws import prepare_points

        target_points = prepare_points(table, x, warmup=warmup, sizes=[result.heldout["N"].iloc[0]])
        boot = boot.map(lambda fitted: fitted.refit_intercepts(target_points))
    return {"n": len(boot.replicates), "failed": boot.n_failed, "seed": seed, "level": level,
            "resampling": describe_method(boot),
            "intervals": boot.intervals(sorted({*result.train_sizes, *result.heldout["N"]})),
            "coverage": coverage(boot, result.heldout)}


def print_report(console: Console, report: dict) -> None:
    from rlscale.laws import format_size

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
            console.print(f"[yellow]fully out of sample ({entry['law']}):[/yellow] {entry['error']}")
            continue
        console.print(f"[bold]{entry['protocol']}[/bold] {entry['law']} on {entry['x']}: {entry['note']}")
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
        console.print(f"held-out points inside the {cov['level']:.0%} {cov['kind']} band: "
                      f"{cov['overall']:.1%} of {cov['n']}")
