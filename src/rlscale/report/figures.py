"""The report's figures (matplotlib, Agg): each a function of run-table data and fitted laws.

Conventions: log-log axes where the paper has them; one colour per model size across all figures
(`size_colours`); fitted lines solid over the data they were fitted on, extrapolations dashed.
A figure whose data is absent raises `NoData` with the reason, which the report prints as a note.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever saved or embedded

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from scipy import stats  # noqa: E402

from rlscale.errors import RlscaleError  # noqa: E402
from rlscale.report.curves import format_size, mean_curves  # noqa: E402

AXIS_LABELS = {
    "C": "compute C = 6·N·T (FLOPs)",
    "D": "data D (prompts consumed)",
    "T": "tokens T",
    "L": "test loss L = 1 − pass@1",
    "step": "training step",
    "N": "model size N (parameters)",
}
EXTRAPOLATE = 3.0  # dashed extension of each fitted line, as a factor beyond its last point


class NoData(RlscaleError):
    """The run table holds nothing this figure could show (e.g. no tau runs)."""


def _new(title: str, *, wide: bool = False) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(7.5 if wide else 6.4, 4.6), layout="constrained")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    return fig, ax


def _tick_label(value: float, _position=None) -> str:
    if value <= 0:
        return ""
    if 1e-3 <= value < 1e4:
        return f"{value:g}"
    return f"{value:.0e}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def log_ticks(ax, which: str = "both") -> None:
    """Plain-number ticks on log axes, denser when the data span few decades (matplotlib's
    default labels only powers of ten, or crowds minor labels over each other)."""
    axes = [a for a, name in ((ax.xaxis, "x"), (ax.yaxis, "y")) if which in (name, "both")]
    for axis in axes:
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(axis.get_view_interval())
        span = np.log10(hi / lo) if lo > 0 else 10.0
        wide_labels = hi >= 1e4 or lo < 1e-3  # "6e11" labels: nine a decade overlap
        subs = (tuple(range(1, 10)) if span <= 1.2 and not wide_labels
                else (1, 2, 5) if span <= 3 else (1,))
        axis.set_major_locator(LogLocator(base=10, subs=subs))
        axis.set_major_formatter(FuncFormatter(_tick_label))
        axis.set_minor_formatter(NullFormatter())


def size_colours(sizes) -> dict[float, tuple]:
    """One viridis colour per model size, small (dark) to large (light), fixed by rank."""
    sizes = sorted({float(n) for n in sizes})
    cmap = plt.get_cmap("viridis")
    span = max(len(sizes) - 1, 1)
    return {n: cmap(0.9 * i / span) for i, n in enumerate(sizes)}


def _value_colours(values, cmap_name: str) -> dict:
    values = sorted(set(values))
    cmap = plt.get_cmap(cmap_name)
    span = max(len(values) - 1, 1)
    return {v: cmap(0.85 * i / span) for i, v in enumerate(values)}


def _require(df: pd.DataFrame | None, what: str, *columns: str, log_x: str | None = None
             ) -> pd.DataFrame:
    """`df` if it has rows and `columns`; with `log_x`, only rows where that axis is > 0 (step 0
    has C = D = 0, which a log axis cannot show)."""
    if df is None or len(df) == 0:
        raise NoData(f"no {what} in the run table")
    missing = [c for c in columns if c not in df or df[c].isna().all()]
    if missing:
        raise NoData(f"{what}: column(s) {', '.join(missing)} absent from the run table")
    if log_x is not None:
        df = df[df[log_x] > 0]
        if len(df) == 0:
            raise NoData(f"{what}: no rows with {log_x} > 0")
    return df


def _law_line(ax, fit, N, x_lo, x_hi, colour, *, fitted: bool = True):
    """The law's curve for size N: solid over [x_lo, x_hi], dashed up to EXTRAPOLATE x_hi.

    `fitted=False` (a size the law never saw) draws the whole line dashed.
    """
    segments = [(x_lo, x_hi, "-" if fitted else "--"), (x_hi, x_hi * EXTRAPOLATE, "--")]
    for lo, hi, style in segments:
        xs = np.geomspace(lo, hi, 60)
        ax.plot(xs, fit.predict(np.full_like(xs, N), xs), style, color=colour, lw=1.6)


def _band(ax, band: pd.DataFrame | None, N, colour) -> None:
    """Shade a prediction band (columns N, X, lo, hi) for size N."""
    if band is None or not len(band):
        return
    rows = band[np.isclose(band["N"], float(N), rtol=1e-6)].sort_values("X")
    if len(rows):
        ax.fill_between(rows["X"], rows["lo"], rows["hi"], color=colour, alpha=0.15, lw=0)


def _band_label(coverage: dict | None) -> str:
    return (f"{coverage['level']:.0%} band (covers {coverage['overall']:.0%} of held-out points)"
            if coverage else "")


def loss_curves(points: pd.DataFrame, fit=None, *, x: str = "C", fitted_sizes=None,
                title: str | None = None, band: pd.DataFrame | None = None,
                coverage: dict | None = None) -> Figure:
    """L vs C (or D) per model size, log-log: run-averaged points and the law's lines.

    `fit` is a FittedLaw over `x`; `fitted_sizes` (default: all) are the sizes it was fitted on;
    the others are drawn dashed as predictions (the inter-model protocol, paper Fig 1-2, 4).
    `band` (N, X, lo, hi) shades the predictions' band, `coverage` labels it.
    """
    points = _require(points, "model-ladder runs", "N", "L", x, log_x=x)
    curves = mean_curves(points, by="N", x=x)
    colours = size_colours(curves["N"])
    fitted_sizes = set(map(float, curves["N"])) if fitted_sizes is None else set(
        map(float, fitted_sizes))
    fig, ax = _new(title or f"Test loss vs {x} per model size")
    for N, group in curves.groupby("N", sort=True):
        colour = colours[float(N)]
        held_out = float(N) not in fitted_sizes
        ax.scatter(group[x], group["L"], s=12, color=colour, alpha=0.75,
                   marker="^" if held_out else "o",
                   label=format_size(N) + (" (predicted)" if held_out else ""))
        if fit is not None:
            _law_line(ax, fit, N, group[x].min(), group[x].max(), colour, fitted=not held_out)
        _band(ax, band, N, colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS[x])
    ax.set_ylabel(AXIS_LABELS["L"])
    if fit is not None:
        ax.plot([], [], "k-", label=f"{getattr(fit, 'law', 'law')} fit")
        ax.plot([], [], "k--", label="extrapolated")
    if band is not None and len(band):
        ax.fill_between([], [], [], color="grey", alpha=0.15, label=_band_label(coverage))
    ax.legend(fontsize=8, ncol=2)
    log_ticks(ax)
    return fig


def learning_efficiency(free: pd.DataFrame, k_curve=None, band: pd.DataFrame | None = None, *,
                        x: str = "C", law_label: str = "k(N) = Kmax / (1 + N0/N)") -> Figure:
    """k(N): the law's curve with its bootstrap band and the free per-size estimates as points.

    `free`: columns N, k, k_lo, k_hi, one independent log-log fit per size (never the law
    evaluated). `k_curve`: a callable N -> k(N) from the fitted law. `band`: columns N, lo, hi.
    """
    _require(free, "per-size slope estimates", "N", "k")
    free = free.dropna(subset=["k"])
    if len(free) == 0:
        raise NoData("no size has enough points for a free slope")
    fig, ax = _new(f"Learning efficiency k(N), {x}-law")
    colours = size_colours(free["N"])
    grid = np.geomspace(free["N"].min() / 2, free["N"].max() * 4, 200)
    if band is not None and len(band):
        ax.fill_between(band["N"], band["lo"], band["hi"], color="tab:blue", alpha=0.18,
                        label="law, 95% bootstrap band")
    if k_curve is not None:
        ax.plot(grid, k_curve(grid), color="tab:blue", lw=1.8, label=law_label)
    yerr = np.vstack([free["k"] - free["k_lo"], free["k_hi"] - free["k"]])
    for i, (_, row) in enumerate(free.iterrows()):
        ax.errorbar(row["N"], row["k"], yerr=yerr[:, i:i + 1], fmt="o", ms=6, capsize=3,
                    color=colours[float(row["N"])],
                    label="free per-size fit, 95% CI" if i == 0 else None)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS["N"])
    ax.set_ylabel(f"k (slope of log L vs log {x})")
    ax.legend(fontsize=8)
    log_ticks(ax, "x")
    return fig


def intra_run_prediction(points: pd.DataFrame, fit, cutoff: dict, *, x: str = "C",
                         errors: dict | None = None, band: pd.DataFrame | None = None,
                         coverage: dict | None = None) -> Figure:
    """Fit on each run's early steps, predict the rest: filled points were fitted, hollow ones
    predicted; the law solid up to the cutoff and dashed after; held-out error in the legend.

    `cutoff`: {N: last fitted step}; `errors`: {N: held-out error text}; `band` (N, X, lo, hi):
    the prediction band of the held-out points, `coverage` its measured coverage.
    """
    points = _require(points, "model-ladder runs", "N", "L", x, "step", log_x=x)
    curves = mean_curves(points, by="N", x=x)
    colours = size_colours(curves["N"])
    fig, ax = _new(f"Intra-run prediction: fit early steps, predict the rest ({x})", wide=True)
    errors = errors or {}
    for N, group in curves.groupby("N", sort=True):
        colour = colours[float(N)]
        last_fitted = cutoff.get(float(N), cutoff.get(N))
        if last_fitted is None:
            continue
        seen = group[group["step"] <= last_fitted]
        ahead = group[group["step"] > last_fitted]
        label = format_size(N)
        if N in errors or float(N) in errors:
            label += f"  held-out err {errors.get(N, errors.get(float(N)))}"
        ax.scatter(seen[x], seen["L"], s=14, color=colour, label=label)
        ax.scatter(ahead[x], ahead["L"], s=14, facecolors="none", edgecolors=colour)
        if len(seen):
            xs = np.geomspace(group[x].min(), seen[x].max(), 40)
            ax.plot(xs, fit.predict(np.full_like(xs, N), xs), "-", color=colour, lw=1.5)
        if len(ahead):
            xs = np.geomspace(seen[x].max() if len(seen) else group[x].min(), group[x].max(), 40)
            ax.plot(xs, fit.predict(np.full_like(xs, N), xs), "--", color=colour, lw=1.5)
        _band(ax, band, N, colour)
    if band is not None and len(band):
        ax.fill_between([], [], [], color="grey", alpha=0.15, label=_band_label(coverage))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS[x])
    ax.set_ylabel(AXIS_LABELS["L"])
    ax.scatter([], [], s=14, color="grey", label="fitted points")
    ax.scatter([], [], s=14, facecolors="none", edgecolors="grey", label="predicted (held out)")
    ax.legend(fontsize=7, loc="lower left")
    log_ticks(ax)
    return fig


def reuse_curves(reuse: pd.DataFrame) -> Figure:
    """Data reuse: L vs step per reuse factor tau, total data fixed (paper Fig 6)."""
    _require(reuse, "data-reuse (tau) runs", "tau", "L", "step")
    curves = mean_curves(reuse, by="tau", x="step")
    colours = _value_colours(curves["tau"], "plasma")
    sizes = ", ".join(format_size(n) for n in sorted(reuse["N"].unique())) if "N" in reuse else "?"
    fig, ax = _new(f"Data reuse: test loss vs step per tau (N = {sizes})")
    for tau, group in curves.groupby("tau", sort=True):
        ax.plot(group["step"], group["L"], "-", marker=".", ms=4, lw=1.2, color=colours[tau],
                label=f"tau = {tau:g}")
    ax.set_xlabel(AXIS_LABELS["step"])
    ax.set_ylabel(AXIS_LABELS["L"])
    ax.legend(fontsize=8)
    return fig


def order_curves(order: pd.DataFrame | None) -> Figure:
    """Prompt order: L vs step per order (curriculum easy -> hard, or shuffled), per size."""
    _require(order, "prompt-order (curriculum vs shuffle) runs", "order", "L", "step")
    fig, ax = _new("Prompt order: test loss vs step (solid: curriculum, dashed: shuffled)")
    colours = size_colours(order["N"].unique())
    for (N, name), group in order.groupby(["N", "order"], sort=True):
        curve = mean_curves(group, by="N", x="step")
        ax.plot(curve["step"], curve["L"], "-" if name == "curriculum" else "--", marker=".",
                ms=3, lw=1.2, color=colours[N], label=f"{format_size(N)} {name}")
    ax.set_xlabel(AXIS_LABELS["step"])
    ax.set_ylabel(AXIS_LABELS["L"])
    ax.legend(fontsize=8)
    return fig


def reuse_final(reuse: pd.DataFrame) -> Figure:
    """Final loss vs tau with 95% intervals (paper Fig 7), from the laws' reuse test
    (`laws.plan.reuse_advice`: mean over the final window, t interval), tested taus marked."""
    from rlscale.laws.plan import reuse_advice

    reuse = _require(reuse, "data-reuse (tau) runs", "tau", "L", "step")
    run = "run" if "run" in reuse else "run_id"
    try:
        advice = reuse_advice(reuse[["tau", "step", "L", run]].rename(columns={run: "run"}))
    except RlscaleError as err:
        raise NoData(f"data-reuse runs: {err}") from None
    final = advice.per_tau
    half = stats.t.ppf(0.975, final["n"] - 1) * final["std"] / np.sqrt(final["n"])
    fig, ax = _new("Data reuse: final test loss vs reuse factor tau")
    ax.errorbar(final["tau"], final["final_L"], yerr=half, fmt="o-", capsize=4,
                color="tab:purple", label="mean over the final window, 95% CI")
    worse = final[final["worse"]]
    if len(worse):
        ax.scatter(worse["tau"], worse["final_L"], s=90, facecolors="none", edgecolors="red",
                   zorder=3, label=f"worse than tau = 1 (p < {advice.alpha:g})")
    ax.axhline(float(final.loc[final["tau"] == advice.baseline, "final_L"].iloc[0]),
               color="grey", ls=":", label="tau = 1 (unique data)")
    ax.set_xscale("log")
    ax.set_xlabel("reuse factor tau (times each prompt is seen)")
    ax.set_ylabel("final " + AXIS_LABELS["L"])
    ax.legend(fontsize=8)
    log_ticks(ax, "x")
    return fig


def group_size(group: pd.DataFrame, *, x: str = "D") -> Figure:
    """Rollout group size G: L vs D (or C) per G, log-log."""
    group = _require(group, "rollout group size (G) runs", "G", "L", x, log_x=x)
    curves = mean_curves(group, by="G", x=x)
    colours = _value_colours(curves["G"], "cividis")
    fig, ax = _new(f"Rollout group size: test loss vs {x} per G")
    for G, rows in curves.groupby("G", sort=True):
        ax.plot(rows[x], rows["L"], "-", marker=".", ms=4, lw=1.2, color=colours[G],
                label=f"G = {G:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS[x])
    ax.set_ylabel(AXIS_LABELS["L"])
    ax.legend(fontsize=8)
    log_ticks(ax)
    return fig


def response_length(steps: pd.DataFrame, *, column: str = "response_len") -> Figure:
    """Mean response length (tokens) vs data D per model size, from the step records."""
    steps = _require(steps, "step records", "N", "D", column, log_x="D")
    curves = (steps.groupby(["N", "step"], sort=True)
              .agg(D=("D", "mean"), length=(column, "mean")).reset_index())
    colours = size_colours(curves["N"])
    fig, ax = _new("Response length vs data per model size")
    for N, rows in curves.groupby("N", sort=True):
        ax.plot(rows["D"], rows["length"], "-", lw=1.3, color=colours[float(N)],
                label=format_size(N))
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS["D"])
    ax.set_ylabel("mean response length (tokens)")
    ax.legend(fontsize=8, ncol=2)
    log_ticks(ax)
    return fig
