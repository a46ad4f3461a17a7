"""The report: one self-contained HTML file (figures inlined as base64 PNG) and a Markdown summary.

Every piece of text that comes from runs (model and experiment names, run ids, eval-set names,
notes quoting them) goes through `html.escape`: a run directory is data, never markup.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlscale import __version__
from rlscale.files import atomic_write_text
from rlscale.laws.validate import short_label
from rlscale.report import figures as F
from rlscale.report.analysis import BOOTSTRAP_SAMPLES, PAPER_LAW, Analysis, analyse
from rlscale.report.curves import format_size, prompt_order_effect, run_column
from rlscale.report.findings import Finding, check_findings
from rlscale.units import size_key

VERDICT_COLOURS = {"yes": "#1a7f37", "no": "#b42318", "inconclusive": "#8a6d00"}


@dataclass
class ReportFigure:
    """One figure slot: the Figure, or the note saying why it is absent."""

    id: str
    title: str
    figure: object | None
    note: str = ""


def make_figures(analysis: Analysis) -> list[ReportFigure]:
    """Every figure of the report, in order; absent data gives a note instead of a figure."""
    a = analysis

    def inter_figure(x):
        variants = a.inter.get(x) or {}
        result = variants.get("out_of_sample") or variants.get("refit_intercept")
        if result is None:
            raise F.NoData("the inter-model protocol could not run (see notes)")
        band = a.bands.get((x, "inter_out_of_sample")) if result is variants.get(
            "out_of_sample") else None
        return F.loss_curves(a.points, result.fitted, x=x, fitted_sizes=result.train_sizes,
                             title=f"Inter-model: largest size predicted from the others ({x}, "
                                   f"{result.protocol})",
                             band=None if band is None else band.heldout,
                             coverage=None if band is None else band.coverage)

    def k_figure(x):
        fit = a.fits.get(x)
        free = a.free.get(x)
        if free is None:
            raise F.NoData(f"no per-size slopes for {x}")
        return F.learning_efficiency(free, fit.k if fit is not None else None, a.k_band.get(x),
                                     x=x)

    def intra_figure(x):
        result = a.intra.get(x)
        if result is None:
            raise F.NoData("the intra-run protocol could not run (see notes)")
        first_held = result.heldout.groupby("N")["step"].min()
        cutoff = {float(n): float(s) - 1 for n, s in first_held.items()}
        by_size = result.errors["by_size"]
        errors = {float(n): f"MAPE {by_size[size_key(n)]['mape']:.1%}" for n in first_held.index}
        band = a.bands.get((x, "intra"))
        return F.intra_run_prediction(a.points, result.fitted, cutoff, x=x, errors=errors,
                                      band=None if band is None else band.heldout,
                                      coverage=None if band is None else band.coverage)

    slots = [
        ("loss-C", "Test loss vs compute per model size (paper Fig 1)",
         lambda: F.loss_curves(a.points, a.fits.get("C"), x="C")),
        ("loss-D", "Test loss vs data per model size (paper Fig 2)",
         lambda: F.loss_curves(a.points, a.fits.get("D"), x="D")),
        ("inter-C", "Inter-model prediction (paper Fig 4)", lambda: inter_figure("C")),
        ("k-C", "Learning efficiency k(N), compute law", lambda: k_figure("C")),
        ("k-D", "Learning efficiency k(N), data law", lambda: k_figure("D")),
        ("intra-C", "Intra-run prediction", lambda: intra_figure("C")),
        ("reuse-curves", "Data reuse: loss vs step per tau (paper Fig 6)",
         lambda: F.reuse_curves(a.split.reuse)),
        ("reuse-final", "Data reuse: final loss vs tau (paper Fig 7)",
         lambda: F.reuse_final(a.split.reuse)),
        ("order-curves", "Prompt order: curriculum vs shuffled",
         lambda: F.order_curves(a.split.order)),
        ("group-D", "Rollout group size G: loss vs data",
         lambda: F.group_size(a.split.group, x="D")),
        ("group-C", "Rollout group size G: loss vs compute",
         lambda: F.group_size(a.split.group, x="C")),
        ("response-length", "Response length vs data",
         lambda: F.response_length(a.steps)),
    ]
    out = []
    for fig_id, title, make in slots:
        try:
            out.append(ReportFigure(fig_id, title, make()))
        except F.NoData as err:
            out.append(ReportFigure(fig_id, title, None, str(err)))
    return out


def _png_base64(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# ------------------------------------------------------------------------------------ tables
def runs_table(analysis: Analysis) -> pd.DataFrame:
    """One row per run: identity, size, knobs, steps, final loss on the primary eval set."""
    df = analysis.table.df if hasattr(analysis.table, "df") else analysis.table
    if analysis.split.eval_set is not None:
        df = df[df["eval_set"] == analysis.split.eval_set]
    run = run_column(df)
    rows = []
    for name, group in df.groupby(run, sort=True):
        group = group.sort_values("step")
        first = group.iloc[0]
        rows.append({"run": name, "experiment": first.get("experiment"),
                     "model": first.get("model"), "N": format_size(first["N"]),
                     "seed": first.get("seed"), "tau": first.get("tau"), "G": first.get("G"),
                     "last step": int(group["step"].max()),
                     "final L": round(float(group["L"].iloc[-1]), 4)})
    return pd.DataFrame(rows)


def slopes_table(analysis: Analysis) -> pd.DataFrame:
    """The free per-size slopes (independent log-log lines) beside the law's k(N)."""
    rows = []
    for x, free in analysis.free.items():
        fit = analysis.fits.get(x)
        for row in free.itertuples(index=False):
            rows.append({"x": x, "N": format_size(row.N), "free k": f"{row.k:.4g}",
                         "95% CI": f"[{row.k_lo:.4g}, {row.k_hi:.4g}]",
                         "law k(N)": f"{float(fit.k(row.N)):.4g}" if fit is not None else "n/a",
                         "R² (log-log)": f"{row.r2:.4f}", "points": row.n})
    return pd.DataFrame(rows)


def params_table(analysis: Analysis) -> pd.DataFrame:
    """Kmax, N0 of the paper's law per x, with bootstrap 95% intervals and in-sample R^2."""
    rows = []
    for x, fit in analysis.fits.items():
        boot = analysis.boot.get(x)
        intervals = boot.intervals() if boot is not None else {}
        for name in ("Kmax", "N0"):
            value = fit.params[name]
            ci = intervals.get(name)
            fmt = format_size if name == "N0" else (lambda v: f"{v:.4g}")
            rows.append({"law": f"{PAPER_LAW} ({x})", "parameter": name, "estimate": fmt(value),
                         "95% CI": f"[{fmt(ci['lo'])}, {fmt(ci['hi'])}]" if ci else "n/a",
                         # a parameter stopped by its bound is not an estimate: say so
                         "on a bound": "yes" if name in fit.bounds_hit else "",
                         "R² (in-sample)": f"{fit.metrics.get('r2', np.nan):.4f}"})
    return pd.DataFrame(rows)


ESTIMATOR_TEXT = {
    "sampled": "the mean correctness of the sampled responses (the paper's estimator)",
    "canonical": "the exact probability of the canonical solution (teacher forcing at the eval "
                 "temperature) plus a sampled correction for correct answers written otherwise: "
                 "an unbiased estimate of the same pass@1 with far less sampling noise",
}


def precision_text(analysis: Analysis) -> str:
    """What L is and how it was estimated, in one sentence."""
    df = analysis.table.df if hasattr(analysis.table, "df") else analysis.table
    names = sorted(df["estimator"].dropna().unique()) if "estimator" in df else ["sampled"]
    how = "; ".join(f"{n}: {ESTIMATOR_TEXT.get(n, n)}" for n in names or ["sampled"])
    clip = (f" Steps 1-{analysis.warmup} are left out of every fit (warm-up clip)."
            if analysis.warmup else "")
    return f"L = 1 − pass@1 on the held-out set; pass@1 estimated by {how}.{clip}"


def order_table(analysis: Analysis) -> pd.DataFrame:
    """Curriculum vs shuffled prompts per size (`curves.prompt_order_effect`), formatted."""
    effect = prompt_order_effect(analysis.split.order)
    return pd.DataFrame({
        "N": [format_size(n) for n in effect["N"]],
        "final L, curriculum": [f"{v:.4f}" for v in effect["L_curriculum"]],
        "final L, shuffled": [f"{v:.4f}" for v in effect["L_shuffle"]],
        "curriculum - shuffled [95% CI]": [f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]" for d, lo, hi in
                                           zip(effect["diff"], effect["lo"], effect["hi"],
                                               strict=True)],
        "runs": list(effect["runs"]),
        "verdict": list(effect["verdict"]),
    })


def noise_table(analysis: Analysis) -> pd.DataFrame:
    """Per size: the eval noise floor (std of L for a fixed policy) beside the run's gain."""
    noise = analysis.noise
    if noise is None or noise.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "N": [format_size(n) for n in noise["N"]],
        "estimator": noise["estimator"],
        "noise floor (std of L)": [f"{v:.4f}" for v in noise["floor"]],
        "how measured": [f"{src} ({r} evaluations)" if r else src
                         for src, r in zip(noise["floor_source"], noise["repeats"], strict=True)],
        "gain over the run (L)": [f"{v:.4f}" for v in noise["gain"]],
        "gain / floor": [f"{v:.1f}" for v in noise["gain_over_floor"]],
    })


def consistency_table(analysis: Analysis) -> pd.DataFrame:
    """Per size: k of the C-law vs the D-law and the largest gap between their curves (they must
    agree: C = N D phi, the paper's appendix C.2)."""
    result = analysis.consistency
    if result is None:
        return pd.DataFrame()
    return pd.DataFrame({
        "N": [format_size(n) for n in result.per_size["N"]],
        "k (C-law)": [f"{v:.4g}" for v in result.per_size["k_C"]],
        "k (D-law)": [f"{v:.4g}" for v in result.per_size["k_D"]],
        "relative k gap": [f"{v:+.1%}" for v in result.per_size["k_rel_gap"]],
        "max curve gap (L)": [f"{v:.4f}" for v in result.per_size["curve_gap"]],
    })


def protocol_table(analysis: Analysis) -> pd.DataFrame:
    """Held-out errors of every prediction protocol that ran (never in-sample numbers)."""
    rows = []

    def add(name, x, result, band=None):
        overall = result.errors["overall"]
        band = analysis.bands.get((x, band)) if band else None
        covered = (f"{band.coverage['overall']:.0%} in the {band.coverage['level']:.0%} band"
                   if band is not None else "")
        rows.append({"protocol": name, "x": x, "law": short_label(result.law),
                     "held-out points": overall["n"], "MAPE": f"{overall['mape']:.2%}",
                     "RMSE": f"{overall['rmse']:.4f}", "R²": f"{overall['r2']:.3f}",
                     "coverage": covered, "note": result.note})

    for x in analysis.fits:
        if x in analysis.intra:
            add(f"intra-run ({analysis.intra_fraction:.0%} fitted)", x, analysis.intra[x], "intra")
        if x in analysis.intra_free:
            add("intra-run, free per-size lines", x, analysis.intra_free[x])
        for variant, result in (analysis.inter.get(x) or {}).items():
            add(f"inter-model ({variant.replace('_', ' ')})", x, result, f"inter_{variant}")
        loso = analysis.loso.get(x)
        if loso is not None:
            for law, summary in loso.summary().items():
                rows.append({"protocol": "leave-one-size-out (E refitted)", "x": x,
                             "law": short_label(law),
                             "held-out points": f"{summary['folds']} folds",
                             "MAPE": f"{summary['mape']:.2%}", "RMSE": f"{summary['rmse']:.4f}",
                             "R²": f"{summary['r2']:.3f}", "coverage": "",
                             "note": "partially in-sample: E of the left-out size refitted"})
    return pd.DataFrame(rows)


def forecast_table(analysis: Analysis) -> pd.DataFrame:
    """Each run's last step forecast from its first half (laws.forecast)."""
    f = analysis.run_forecasts
    if f is None or f.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "N": [format_size(n) for n in f["N"]],
        "fitted steps": [f"up to {s:g}" for s in f["fitted_to_step"]],
        "forecast step": [f"{s:g}" for s in f["step"]],
        "L forecast": [f"{v:.4f}" for v in f["L_pred"]],
        "90% band": [f"[{lo:.4f}, {hi:.4f}]" for lo, hi in zip(f["lo"], f["hi"], strict=True)],
        "L observed": [f"{v:.4f}" for v in f["L"]],
        "error": [f"{v:.1%}" for v in f["error"]],
        "inside": ["yes" if v else "no" for v in f["inside"]],
    })


def rivals_table(analysis: Analysis) -> pd.DataFrame:
    """The rival forms' held-out errors and ranks (laws.rivals), C and D."""
    def pct(v):
        return f"{v:.2%}" if np.isfinite(v) else ""

    rows = []
    for x, table in analysis.rivals.items():
        for r in table.frame.itertuples(index=False):
            rows.append({"x": x, "law": short_label(r.law), "intra MAPE": pct(r.intra_mape),
                         "intra RMSE": f"{r.intra_rmse:.4f}" if np.isfinite(r.intra_rmse) else "",
                         "intra rank": "" if pd.isna(r.intra_rank) else int(r.intra_rank),
                         "leave-one-size-out MAPE": pct(r.loso_mape) or r.loso_note,
                         "LOSO RMSE": f"{r.loso_rmse:.4f}" if np.isfinite(r.loso_rmse) else "",
                         "LOSO rank": "" if pd.isna(r.loso_rank) else int(r.loso_rank)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- rendering
def _e(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>none</em></p>"
    head = "".join(f"<th>{_e(c)}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _consistency_verdict(analysis: Analysis) -> str:
    result = analysis.consistency
    if result is None:
        return "<p><em>not computed (needs both C and D)</em></p>"
    word = "consistent" if result.consistent else "NOT consistent"
    return (f"<p>The two laws are <strong>{word}</strong> (tolerances: k within "
            f"{result.tol_k:.0%}, curves within {result.tol_curve:g} in L).</p>")


def _finding_html(f: Finding) -> str:
    colour = VERDICT_COLOURS[f.verdict]
    return (f'<div class="finding" id="finding-{f.id}"><h3>{f.id}. {_e(f.claim)} '
            f'<span class="verdict" style="background:{colour}">{_e(f.verdict)}</span></h3>'
            f"<p>{_e(f.evidence)}</p></div>")


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
th{background:#f3f3f3} figure{margin:1.5em 0} img{max-width:100%}
.verdict{color:#fff;border-radius:4px;padding:.1em .5em;font-size:.8em;margin-left:.5em}
.note{color:#8a6d00} .finding p{margin-top:0}
"""


def render_html(analysis: Analysis, findings: list[Finding], figures: list[ReportFigure],
                *, title: str) -> str:
    order = order_table(analysis)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>",
             f"<p>rlscale {_e(__version__)}; {len(runs_table(analysis))} runs; laws fitted on "
             f"the model ladder ({len(analysis.sizes)} sizes: "
             f"{_e(', '.join(format_size(n) for n in analysis.sizes))}), eval set "
             f"<code>{_e(analysis.split.eval_set)}</code>.</p>",
             f"<p>{_e(precision_text(analysis))}</p>",
             "<h2>Findings of the paper, checked against these runs</h2>",
             *(_finding_html(f) for f in findings),
             "<h2>Fitted law</h2><p>log10 L = −k(N) log10 X + E(N), k(N) = Kmax / (1 + N0/N);"
             " intervals from the bootstrap (laws.bootstrap).</p>",
             _html_table(params_table(analysis)),
             "<h3>Learning efficiency per size</h3><p>Free k: an independent least-squares line"
             " in log10 L vs log10 X per size (run-averaged curve, t interval); law k(N): the "
             "fitted formula at that size.</p>",
             _html_table(slopes_table(analysis)),
             "<h3>C-law vs D-law consistency</h3>",
             _consistency_verdict(analysis),
             _html_table(consistency_table(analysis)),
             "<h2>Prediction protocols: held-out errors</h2>",
             "<p>Coverage: the share of held-out points inside the protocol's prediction band "
             "(bootstrap of the fitted part with correlated residuals: per-size offset and tilt "
             "from held-out sizes, AR(1) within a curve; laws.noise).</p>",
             _html_table(protocol_table(analysis)),
             "<h3>Rival forms, ranked by held-out RMSE</h3><p>Intra-run: the first "
             f"{analysis.intra_fraction:.0%} of every curve fitted; leave-one-size-out: each size "
             "predicted fully out of sample from the others (laws.rivals).</p>",
             _html_table(rivals_table(analysis)),
             "<h3>Forecasting a run in progress</h3><p>Each run's last step forecast from its own "
             "first half, as <code>rlscale predict RUN_DIR --until STEP</code> would have done "
             "halfway through (its own line, bootstrap band).</p>",
             _html_table(forecast_table(analysis)),
             *(["<h2>Prompt order: curriculum vs shuffled</h2><p>Final L: the mean of each "
                "run's last 20% of evaluations (the paper orders problems easy to hard; the "
                "miniature demo shuffles them, docs/miniature.md).</p>",
                _html_table(order)] if len(order) else []),
             "<h2>Measurement precision</h2><p>The eval noise floor is the std of L for a fixed "
             "policy (the step-0 policy re-evaluated with other sampling seeds where measured); "
             "the gain is L at step 0 minus the mean of the last 3 evaluations.</p>",
             _html_table(noise_table(analysis)),
             "<h2>Figures</h2>"]
    for fig in figures:
        if fig.figure is None:
            parts.append(f'<p class="note" id="fig-{fig.id}-missing"><strong>{_e(fig.title)}'
                         f"</strong>: skipped, {_e(fig.note)}.</p>")
        else:
            parts.append(f'<figure id="fig-{fig.id}"><img id="img-{fig.id}" alt="{_e(fig.title)}"'
                         f' src="data:image/png;base64,{_png_base64(fig.figure)}">'
                         f"<figcaption>{_e(fig.title)}</figcaption></figure>")
    parts += ["<h2>Runs</h2>", _html_table(runs_table(analysis))]
    if analysis.notes:
        parts += ["<h2>Notes</h2><ul>", *(f"<li>{_e(n)}</li>" for n in analysis.notes), "</ul>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_none_\n"
    cells = [[str(c) for c in df.columns]] + [["" if v is None else str(v).replace("|", "\\|")
                                               for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(r) + " |" for r in cells]
    lines.insert(1, "|" + "---|" * len(df.columns))
    return "\n".join(lines) + "\n"


def render_markdown(analysis: Analysis, findings: list[Finding], figures: list[ReportFigure],
                    *, title: str, html_name: str) -> str:
    lines = [f"# {title}", "", f"Full report with figures: `{html_name}`.", "",
             precision_text(analysis), "", "## Findings", ""]
    lines += [f"- **{f.id}. {f.claim}**: **{f.verdict}**. {f.evidence}" for f in findings]
    lines += ["", "## Fitted law", "", _md_table(params_table(analysis)),
              "### Learning efficiency per size", "", _md_table(slopes_table(analysis)),
              "### C-law vs D-law consistency", "", _md_table(consistency_table(analysis)),
              "## Prediction protocols (held-out errors)", "", _md_table(protocol_table(analysis)),
              "### Rival forms, ranked by held-out RMSE", "", _md_table(rivals_table(analysis)),
              "### Forecasting a run in progress (last step from the first half)", "",
              _md_table(forecast_table(analysis))]
    order = order_table(analysis)
    if len(order):
        lines += ["## Prompt order: curriculum vs shuffled (final L)", "", _md_table(order)]
    lines += ["## Measurement precision", "", _md_table(noise_table(analysis))]
    missing = [f for f in figures if f.figure is None]
    if missing:
        lines += ["## Figures skipped", ""] + [f"- {f.title}: {f.note}" for f in missing]
    if analysis.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in analysis.notes]
    return "\n".join(lines) + "\n"


RUN_LOG_FILES = ("meta.json", "steps.jsonl", "evals.jsonl")


def check_output(out_html: Path) -> None:
    """The report's three files (X.html, X.md, X.json) can be written and overwrite no run log:
    DataError naming the path otherwise."""
    from rlscale.errors import DataError

    if out_html.suffix.lower() not in (".html", ".htm"):
        raise DataError("the report must be an .html file (its .md and .json siblings are "
                        "written beside it)", path=out_html)
    for path in (out_html, out_html.with_suffix(".md"), out_html.with_suffix(".json")):
        if path.name in RUN_LOG_FILES or path.is_dir():
            raise DataError("would overwrite a run's log or a directory", path=path)
    try:
        out_html.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_html.parent, prefix=".rlscale-check-"):
            pass
    except OSError as error:
        raise DataError(f"cannot write here ({error.strerror or error})",
                        path=out_html.parent) from None


def build_report(run_root, out_html=None, *, progress: bool = True, figures_dir=None,
                 bootstrap_samples: int = BOOTSTRAP_SAMPLES, warmup: int = 0,
                 timing: dict | None = None) -> tuple[Path, Path]:
    """Load the runs under `run_root`, fit and check everything, write the HTML report, a
    Markdown summary and report.json beside it (same name, `.md` / `.json`). `figures_dir`: also
    save each figure as PNG. warmup: the warm-up clip (`analyse`). Returns (html_path, md_path)."""
    from rlscale.report.summary import report_summary
    from rlscale.runs import RunTable
    run_root = Path(run_root)
    out_html = Path(out_html) if out_html is not None else run_root / "report.html"
    check_output(out_html)  # before the analysis, which can take minutes
    table = RunTable.load(run_root)
    analysis = analyse(table, progress=progress, bootstrap_samples=bootstrap_samples,
                       warmup=warmup)
    findings = check_findings(analysis)
    figures = make_figures(analysis)
    title = f"rlscale report: {run_root.name or run_root}"
    out_html.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_html, render_html(analysis, findings, figures, title=title))
    md_path = out_html.with_suffix(".md")
    atomic_write_text(md_path, render_markdown(analysis, findings, figures, title=title,
                                               html_name=out_html.name))
    summary = report_summary(analysis, findings, timing=timing)
    atomic_write_text(out_html.with_suffix(".json"), json.dumps(summary, indent=1) + "\n")
    if figures_dir is not None:
        Path(figures_dir).mkdir(parents=True, exist_ok=True)
        for fig in figures:
            if fig.figure is not None:
                fig.figure.savefig(Path(figures_dir) / f"{fig.id}.png", dpi=110)
    for fig in figures:
        if fig.figure is not None:
            plt.close(fig.figure)
    return out_html, md_path
