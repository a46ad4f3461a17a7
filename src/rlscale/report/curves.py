"""Plain-data views of a run table that the figures and the findings share.

No fitting of scaling laws here (that is `rlscale.laws`): only choosing which runs belong to which
experiment, averaging repeated runs, final losses with intervals and free per-size log-log slopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from rlscale import units

PRIMARY_EVAL_SETS = ("holdout", "heldout", "held_out", "test")


def frame(table) -> pd.DataFrame:
    """The tidy (run, step, eval_set) frame of a `RunTable`, or the frame itself."""
    return table.df if hasattr(table, "df") else table


def run_column(df: pd.DataFrame) -> str:
    """The column naming runs uniquely: RunTable's `run` (experiment/run_id), else `run_id`."""
    return "run" if "run" in df else "run_id"


def primary_eval_set(df: pd.DataFrame) -> str | None:
    """The held-out set the laws use: the runs' `primary_eval`, one named like 'holdout', else
    the one evaluated most."""
    if "eval_set" not in df or df["eval_set"].isna().all():
        return None
    if "primary_eval" in df and df["primary_eval"].notna().any():
        return str(df["primary_eval"].dropna().mode().iloc[0])
    names = df["eval_set"].dropna().astype(str)
    for name in PRIMARY_EVAL_SETS:
        if name in set(names):
            return name
    return names.value_counts().index[0]


def _varies(df: pd.DataFrame, column: str) -> bool:
    return column in df and df[column].dropna().nunique() > 1


def _experiments_where(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """Rows of the experiments in which `column` takes more than one value."""
    if "experiment" not in df:
        return df if _varies(df, column) else df.iloc[0:0]
    keep = [name for name, group in df.groupby("experiment", sort=True) if _varies(group, column)]
    return df[df["experiment"].isin(keep)]


@dataclass(frozen=True)
class Split:
    """A run table cut into the paper's three experiments (any may be empty)."""

    ladder: pd.DataFrame  # model sizes at tau = 1 and one G: what the laws are fitted on
    reuse: pd.DataFrame  # one experiment's runs with several tau
    group: pd.DataFrame  # one experiment's runs with several G
    eval_set: str | None
    order: pd.DataFrame | None = None  # experiments comparing prompt orders (curriculum, shuffle)


def split_experiments(table) -> Split:
    """Find the ladder, reuse and group-size runs by what varies inside each experiment.

    The ladder is every experiment with two or more model sizes (or, without one, every run),
    restricted to unique data (tau = 1), its most common G and its most common variant (base or
    instruct: the paper fits each family on its own), so reuse, G or instruct runs never leak
    into the law fits.
    """
    df = frame(table)
    eval_set = primary_eval_set(df)
    if eval_set is not None:
        df = df[df["eval_set"] == eval_set]
    ladder = _experiments_where(df, "N")
    if len(ladder) == 0:  # no multi-size experiment: still show the curves of the runs there are
        ladder = df
    if "tau" in ladder:
        ladder = ladder[ladder["tau"].isna() | (ladder["tau"] == 1)]
    order = _experiments_where(df, "order")
    if len(order) and "experiment" in ladder:  # an order comparison is not a size ladder
        ladder = ladder[~ladder["experiment"].isin(order["experiment"].unique())]
    for column in ("G", "variant", "order"):
        if column in ladder and ladder[column].notna().any():
            ladder = ladder[ladder[column] == ladder[column].mode().iloc[0]]
    return Split(ladder=ladder, reuse=_experiments_where(df, "tau"),
                 group=_experiments_where(df, "G"), eval_set=eval_set, order=order)


def law_points(ladder: pd.DataFrame) -> pd.DataFrame:
    """The laws' input columns (N, run, step, C, D, T, L) from ladder rows."""
    df = ladder if "run" in ladder else ladder.rename(columns={"run_id": "run"})
    cols = [c for c in ("N", "run", "step", "C", "D", "T", "L") if c in df]
    return df[cols].reset_index(drop=True)


def mean_curves(points: pd.DataFrame, by: str = "N", x: str = "C") -> pd.DataFrame:
    """Repeated runs averaged per (`by`, step): columns by, step, x, L, n_runs."""
    grouped = points.groupby([by, "step"], sort=True)
    columns = {"L": ("L", "mean")} if x == "step" else {x: (x, "mean"), "L": ("L", "mean")}
    out = grouped.agg(**columns)
    out["n_runs"] = grouped.size()
    return out.reset_index()


def eval_noise(L) -> float:
    """Eval noise of one curve, model-free: std of successive differences / sqrt(2) (the smooth
    training trend cancels in the differences, the independent eval noise does not)."""
    L = np.asarray(L, float)
    return float(np.std(np.diff(L), ddof=1) / np.sqrt(2)) if len(L) > 2 else np.nan


def final_loss(df: pd.DataFrame, by: str, *, window: float = 0.2, min_evals: int = 5,
               level: float = 0.95) -> pd.DataFrame:
    """Final loss per value of `by` with a confidence interval.

    The final loss is the mean over the last `window` fraction of each run's evals (at least
    `min_evals`), averaged over runs. Its standard error is the larger of the eval-noise error
    (each curve's `eval_noise` / sqrt(evals averaged)) and, with 2+ runs, the run-to-run spread.
    """
    run = run_column(df)
    rows = []
    for value, group in df.groupby(by, sort=True):
        finals, noises, counts = [], [], []
        for _, curve in group.groupby(run if run in group else by, sort=True):
            L = curve.sort_values("step")["L"].to_numpy(float)
            n_last = min(len(L), max(min_evals, int(np.ceil(window * len(L)))))
            finals.append(L[-n_last:].mean())
            noises.append(eval_noise(L))
            counts.append(n_last)
        noise_se = np.sqrt(np.nanmean(np.square(noises)) / np.sum(counts))
        spread_se = np.std(finals, ddof=1) / np.sqrt(len(finals)) if len(finals) > 1 else 0.0
        sem = float(max(noise_se, spread_se))
        half = float(stats.norm.ppf(0.5 + level / 2) * sem)
        mean = float(np.mean(finals))
        rows.append({by: value, "L": mean, "sem": sem, "lo": mean - half, "hi": mean + half,
                     "n_evals": int(np.sum(counts)), "n_runs": len(finals),
                     "last_step": int(group["step"].max())})
    return pd.DataFrame(rows)


def loglinear_slope(x, L, *, level: float = 0.95) -> dict:
    """Free log-log line log10 L = -k log10 x + E fitted by least squares, with a t interval on k.

    Written with scipy's linregress because this is one straight line: the laws package fits the
    joint k(N) forms; this is the independent per-size estimate they are checked against.
    """
    x, L = np.asarray(x, float), np.asarray(L, float)
    ok = (x > 0) & (L > 0) & np.isfinite(x) & np.isfinite(L)
    lx, ly = np.log10(x[ok]), np.log10(L[ok])
    if len(lx) < 3 or np.ptp(lx) == 0:
        return {"k": np.nan, "k_lo": np.nan, "k_hi": np.nan, "E": np.nan, "r2": np.nan,
                "n": int(len(lx))}
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf(0.5 + level / 2, len(lx) - 2) * fit.stderr
    return {"k": -fit.slope, "k_lo": -fit.slope - half, "k_hi": -fit.slope + half,
            "E": fit.intercept, "r2": fit.rvalue**2, "n": int(len(lx))}


def prompt_order_effect(order: pd.DataFrame | None, *, level: float = 0.95) -> pd.DataFrame:
    """Curriculum against shuffled prompts, per size: the final L of each (`final_loss`: mean of
    each run's last 20% of evals, with the larger of the eval-noise and run-to-run error), the
    difference curriculum - shuffled with its `level` interval, and what it says. Empty without
    both orders at some size."""
    columns = ["N", "L_curriculum", "L_shuffle", "diff", "lo", "hi", "runs", "verdict"]
    if order is None or len(order) == 0 or "order" not in order:
        return pd.DataFrame(columns=columns)
    z = float(stats.norm.ppf(0.5 + level / 2))
    rows = []
    for size, group in order.groupby("N", sort=True):
        final = final_loss(group, "order", level=level).set_index("order")
        if not {"curriculum", "shuffle"} <= set(final.index):
            continue
        cur, shu = final.loc["curriculum"], final.loc["shuffle"]
        diff = float(cur["L"] - shu["L"])
        half = z * float(np.hypot(cur["sem"], shu["sem"]))
        verdict = ("curriculum better" if diff + half < 0 else
                   "shuffled better" if diff - half > 0 else "no difference")
        rows.append({"N": float(size), "L_curriculum": float(cur["L"]),
                     "L_shuffle": float(shu["L"]), "diff": diff, "lo": diff - half,
                     "hi": diff + half, "runs": int(cur["n_runs"] + shu["n_runs"]),
                     "verdict": verdict})
    return pd.DataFrame(rows, columns=columns)


def free_slopes(points: pd.DataFrame, x: str = "C", by: str = "N", *, min_step: int = 1
                ) -> pd.DataFrame:
    """Per-size (or per-G ...) free slopes k with 95% intervals, on run-averaged curves."""
    curves = mean_curves(points[points["step"] >= min_step], by=by, x=x)
    rows = [{by: value, **loglinear_slope(group[x], group["L"])}
            for value, group in curves.groupby(by, sort=True)]
    return pd.DataFrame(rows, columns=[by, "k", "k_lo", "k_hi", "E", "r2", "n"])


REPORT_SIZE_DIGITS = 3  # the report's size labels: '1.23B' (the CLI's, `units.format_size`: 4)


def format_size(N: float) -> str:
    """The report's size label, `rlscale.units.format_size` to 3 digits: 1.5e9 -> '1.5B'."""
    return units.format_size(N, digits=REPORT_SIZE_DIGITS)
