"""The plan's figure (matplotlib, Agg): predicted loss against budget per model size, with the
bootstrap bands, the optimal-size frontier and the asked budget (or target loss) marked.

In the style of `rlscale.report.figures`, whose log ticks and size colours it uses: it draws a
`rlscale.laws.plan.frontier` frame.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever saved or embedded

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from rlscale.errors import LawError  # noqa: E402
from rlscale.laws.base import format_size  # noqa: E402
from rlscale.report.figures import log_ticks, size_colours  # noqa: E402

BUDGET_LABELS = {"C": "compute budget C = 6·N·T (FLOPs)", "D": "data budget D (prompts)"}
LOSS_LABEL = "test loss L = 1 − pass@1"
SIZE_LABEL = "optimal model size N (parameters)"


def figure_format(path) -> str:
    """The image format of `path` from its suffix (png, pdf, svg, ...); a LawError otherwise, so
    that a bad name is refused before any work is done."""
    suffix = Path(path).suffix.lower().lstrip(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if suffix not in supported:
        raise LawError(f"{path}: the figure's name must end in one of "
                       f"{', '.join('.' + s for s in sorted(supported))}")
    return suffix


def plan_figure(frontier_df: pd.DataFrame, plan, path) -> Path:
    """Draw `frontier_df` (from `rlscale.laws.plan.frontier`) with `plan` (a PlanResult, or its
    dict) marked, and save it to `path` (format from the suffix; written whole or not at all).
    Left: L against budget per size (log-log), shaded bands where the frame has them, the
    frontier (the least L over the candidates) as a thick black line with markers coloured by
    the optimal size, the continuous optimum dashed; the asked budget (or the target loss) and the
    chosen size marked. Right: the optimal size against budget."""
    fig = draw_plan(frontier_df, plan)
    path = Path(path)
    fmt = figure_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        fig.savefig(tmp, format=fmt, dpi=110)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a figure is an ordinary file
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def draw_plan(frontier_df: pd.DataFrame, plan) -> Figure:
    """The figure `plan_figure` saves (not saved; close it when done)."""
    report = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
    df = frontier_df
    if df is None or len(df) == 0 or not df["in_range"].any():
        raise LawError("the frontier has no budget where the law predicts L in (0, 1): nothing to draw")
    unit = df.attrs.get("unit", "C")
    level = df.attrs.get("level")
    colours = size_colours(df["N"])
    fig, (ax, ax_n) = plt.subplots(1, 2, figsize=(11.5, 4.8), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.6, 1.0]})
    for a in (ax, ax_n):
        a.grid(True, which="major", alpha=0.3)
        a.grid(True, which="minor", alpha=0.1)
    ax.set_title(f"Predicted test loss vs {'compute' if unit == 'C' else 'data'} per size "
                 f"({report.get('law', df.attrs.get('law', 'law'))})")
    ax_n.set_title("Optimal size per budget")

    for N, group in df.groupby("N", sort=True):
        colour = colours[float(N)]
        ax.plot(group["budget"], group["L"], "-", color=colour, lw=1.4, label=format_size(N))
        if group["L_lo"].notna().any():
            ax.fill_between(group["budget"], group["L_lo"], group["L_hi"], color=colour, alpha=0.13,
                            lw=0)
    per_budget = df.drop_duplicates("budget").sort_values("budget")
    best = per_budget.dropna(subset=["best_N"])
    ax.plot(best["budget"], best["best_L"], "-", color="black", lw=3.2, alpha=0.55, zorder=3,
            label="frontier (best candidate)")
    marks = best.iloc[::max(1, len(best) // 12)]
    ax.scatter(marks["budget"], marks["best_L"], s=24, zorder=4, edgecolor="black", linewidth=0.6,
               color=[colours[float(n)] for n in marks["best_N"]])
    cont = per_budget.dropna(subset=["N_opt", "L_opt"])
    if len(cont):
        ax.plot(cont["budget"], cont["L_opt"], "--", color="black", lw=1.2, zorder=4,
                label="continuous optimum")
    _mark_plan(ax, ax_n, report, unit, colours)

    # right panel: the optimal size against budget
    ax_n.step(best["budget"], best["best_N"], where="mid", color="black", lw=2.2, alpha=0.6,
              label="best candidate")
    ax_n.scatter(marks["budget"], marks["best_N"], s=20, zorder=3, edgecolor="black", linewidth=0.5,
                 color=[colours[float(n)] for n in marks["best_N"]])
    if len(cont):
        ax_n.plot(cont["budget"], cont["N_opt"], "--", color="black", lw=1.2, label="continuous")
    sizes = sorted(colours)
    for N in sizes:
        ax_n.axhline(N, color=colours[N], lw=0.6, alpha=0.5)

    for a in (ax, ax_n):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel(BUDGET_LABELS.get(unit, "budget"))
    ax.set_ylabel(LOSS_LABEL)
    ax_n.set_ylabel(SIZE_LABEL)
    shown = df[["L", "L_lo", "L_hi"]].to_numpy(float)
    shown = shown[np.isfinite(shown) & (shown > 0)]
    if report.get("goal") == "target_loss":
        shown = np.append(shown, report["value"])
    ax.set_ylim(max(shown.min() / 1.15, 1e-6), min(shown.max() * 1.15, 1.0))
    lo, hi = df["budget"].min(), df["budget"].max()
    ax.set_xlim(lo, hi)
    ax_n.set_xlim(lo, hi)
    ax_n.set_ylim(sizes[0] / 1.6, sizes[-1] * 1.6)
    ax_n.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_size(v) if v > 0 else ""))
    ax_n.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7.5, ncol=2, title=f"bands: {level:.0%} bootstrap" if level else None,
              title_fontsize=7.5)
    ax_n.legend(fontsize=7.5)
    log_ticks(ax)
    log_ticks(ax_n, "x")
    return fig


def _mark_plan(ax, ax_n, report: dict, unit: str, colours: dict) -> None:
    """The asked budget (a vertical line) or the target loss (a horizontal one), and the chosen
    size's point (a star) with its label."""
    best = report.get("best")
    key = "C" if unit == "C" else "D"
    if report.get("goal") == "target_loss":
        ax.axhline(report["value"], color="crimson", ls=":", lw=1.4,
                   label=f"target L = {report['value']:.3g}")
        where = best.get(key) if best else None
    else:
        where = report["value"] if report.get("goal") == ("compute" if unit == "C" else "data") \
            else (best.get(key) if best else None)
        if where is not None:
            ax.axvline(where, color="crimson", ls=":", lw=1.4,
                       label=f"asked {_unit_text(unit)} = {where:.3g}")
    if best is None or where is None or not math.isfinite(where):
        return
    colour = colours.get(float(best["N"]), "crimson")
    ax.scatter([where], [best["L"]], marker="*", s=220, color=colour, edgecolor="crimson",
               linewidth=1.2, zorder=6, label=f"plan: {format_size(best['N'])} (L {best['L']:.3g})")
    ax.annotate(format_size(best["N"]), (where, best["L"]), xytext=(6, 6),
                textcoords="offset points", fontsize=8, color="crimson")
    ax_n.axvline(where, color="crimson", ls=":", lw=1.2)
    ax_n.scatter([where], [best["N"]], marker="*", s=160, color=colour, edgecolor="crimson",
                 linewidth=1.0, zorder=6)


def _unit_text(unit: str) -> str:
    return "C (FLOPs)" if unit == "C" else "D (prompts)"
