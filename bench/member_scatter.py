"""How far other pretraining draws of a family's members differ from the family's own, against the
forecast errors the laws are held to (docs/miniature.md, "A second pretraining draw").

    python bench/member_scatter.py RUNS_A RUNS_B [--warmup 4] [--law L ...] [--plot FILE]

RUNS_A: the Exp 1 ladder of one draw of the family, e.g. a demo's runs/exp1_ladder. RUNS_B: runs
of other draws, all of one ladder (specs/ablations/second_draw.yaml: every size redrawn) or of
some sizes only (specs/ablations/top_draws.yaml: several draws of the top member), with the same
RL recipe and seed. Prints, for each run of B, L at the first and last step beside A's run of the
same size, the mean absolute gap between the two curves and each one's free k (C); then A's
largest size predicted fully out of sample (the default laws of `rlscale predict --protocol
inter`) from A's smaller sizes, each top of B from the same smaller sizes and, with 3+ tops in
all, the mean of the top curves step by step (and the tops' spread about it); where B holds a
whole ladder, also B alone, A's top from B's smaller sizes, and both pooled. `--law L` (repeatable)
predicts with other laws that can predict an unseen size (loglinear_kn:e_form=saturating,
decomposition, additive); `--plot FILE` draws the top's draws and their forecast. Same runs,
same figures. Not a timing.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import LawWarning, load_law_table
from rlscale.laws.validate import inter_model
from rlscale.report.curves import free_slopes
from rlscale.units import format_size


def ladder(root, tag: str, warmup: int) -> pd.DataFrame:
    table = load_law_table(root)
    table = table[~table["step"].between(1, warmup)].reset_index(drop=True)
    return table.assign(run=tag + ":" + table["run"].astype(str))


def top_error(table: pd.DataFrame, x: str, law: str | None = None) -> str:
    """MAPE of the top size fully out of sample, and its sign: the mean of L_pred / L - 1."""
    try:
        result = inter_model(table, law, x)
    except LawError as e:
        return f"not computed ({e})"
    bias = float(np.mean(result.heldout["L_pred"] / result.heldout["L"] - 1))
    return f"{result.errors['overall']['mape']:.2%} ({bias:+.1%})"


def mean_curve(runs: pd.DataFrame, tag: str) -> pd.DataFrame:
    """Several runs of one size averaged step by step (L, C, D, T), as one run."""
    mean = runs.groupby("step", as_index=False)[["N", "C", "D", "T", "L"]].mean()
    return mean.assign(run=tag)[runs.columns]


def plot_tops(smaller: pd.DataFrame, tops: pd.DataFrame, path: str) -> None:
    """L against C, log-log: every draw of the top and the forecast of its curve (the default
    law, fitted on the smaller sizes only; one line, as the draws differ only in their C)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlscale.report.figures import log_ticks

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (run, curve) in enumerate(tops.groupby("run", sort=True)):
        result = inter_model(pd.concat([smaller, curve]), None, "C")
        points = result.heldout.sort_values("X")
        ax.plot(points["X"], points["L"], "o-", ms=3, lw=1, label=run.split(":", 1)[1])
        if i == 0:
            ax.plot(points["X"], points["L_pred"], "k--", lw=1.5,
                    label="forecast from the smaller sizes (fully out of sample)")
    ax.set(xscale="log", yscale="log", xlabel="compute C (FLOPs)", ylabel="test loss L",
           title=f"Draws of {format_size(tops['N'].iloc[0])} and the forecast of its curve")
    log_ticks(ax)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_a")
    parser.add_argument("runs_b")
    parser.add_argument("--warmup", type=int, default=4, help="the warm-up clip (the demo's: 4)")
    parser.add_argument("--law", action="append", default=None,
                        help="a law to predict the top with (repeatable; default: the default "
                             "laws of `rlscale predict --protocol inter`), e.g. decomposition")
    parser.add_argument("--plot", help="write a figure (PNG) of the top's curves, each draw's, "
                                       "with the forecast from A's smaller sizes")
    args = parser.parse_args()
    warnings.simplefilter("ignore", LawWarning)
    A, B = ladder(args.runs_a, "A", args.warmup), ladder(args.runs_b, "B", args.warmup)
    if A.groupby("N")["run"].nunique().max() > 1:
        raise SystemExit(f"{args.runs_a}: RUNS_A must hold one run a size (one draw of the family)")

    def free_k(run: pd.DataFrame):
        return free_slopes(run, "C", min_step=args.warmup + 1).iloc[0]

    print("| N | run of B | L first A / B | L last A / B | mean abs gap of L | free k (C) A / B "
          "| R^2 A / B |")
    print("|---|---|---|---|---|---|---|")
    for (n, run), b in B.groupby(["N", "run"], sort=True):
        if n not in set(A["N"]):
            continue
        a = A[A["N"] == n]
        a_curve, b_curve = a.set_index("step")["L"], b.set_index("step")["L"]
        steps = a_curve.index.intersection(b_curve.index)
        late = steps[steps > args.warmup]
        gap = float(np.mean(np.abs(b_curve[late] / a_curve[late] - 1)))
        ka, kb = free_k(a), free_k(b)
        first, last = steps.min(), steps.max()
        print(f"| {format_size(n)} | {run.removeprefix('B:')} | {a_curve[first]:.3f} / "
              f"{b_curve[first]:.3f} | {a_curve[last]:.3f} / {b_curve[last]:.3f} | {gap:.1%} | "
              f"{ka.k:.4f} / {kb.k:.4f} | {ka.r2:.3f} / {kb.r2:.3f} |")

    top = A["N"].max()
    smaller_a = A[A["N"] < top]
    families = {"A": A}
    for run in sorted(B.loc[B["N"] == top, "run"].unique()):
        families[f"A's smaller sizes, {run.removeprefix('B:')} as the top"] = pd.concat(
            [smaller_a, B[B["run"] == run]])
    tops = pd.concat([A[A["N"] == top], B[B["N"] == top]])
    if tops["run"].nunique() > 2:
        families[f"A's smaller sizes, the mean of the {tops['run'].nunique()} top curves"] = \
            pd.concat([smaller_a, mean_curve(tops, "mean of the tops")])
        by_step = tops.pivot_table(index="step", columns="run", values="L")
        spread = by_step.std(axis=1) / by_step.mean(axis=1)
        print(f"\n{tops['run'].nunique()} draws of {format_size(top)}: std / mean of L across the "
              f"draws, per step: mean {spread.mean():.1%}, range {spread.min():.1%}-{spread.max():.1%}")
    if B.groupby("N")["run"].nunique().max() == 1 and len(set(B["N"])) == len(set(A["N"])):
        families |= {
            "B": B,
            "B's smaller sizes, A's top": pd.concat([B[B["N"] < top], A[A["N"] == top]]),
            "A and B pooled (two runs a size)": pd.concat([A, B]),
        }
    if args.plot:
        plot_tops(smaller_a, tops, args.plot)
    for law in args.law or [None]:
        print(f"\n| ladder ({law or 'default laws'}) | {format_size(top)} fully out of sample, C: "
              f"MAPE (mean L_pred / L - 1) | D |\n|---|---|---|")
        for name, table in families.items():
            print(f"| {name} | {top_error(table, 'C', law)} | {top_error(table, 'D', law)} |")


if __name__ == "__main__":
    main()
