"""The paper's findings (PAPER.md §6) checked against a run table, each with its evidence.

Every check returns a `Finding` with a verdict: "yes" (the data show it), "no" (the data show the
opposite, or show the effect is absent) or "inconclusive" (the data cannot decide, with the
reason). Intervals are 95%. Thresholds are module constants so a reader sees what "flat" means.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from rlscale.errors import RlscaleError
from rlscale.laws.k_of_n import fit_k_of_n, sigma_from_interval
from rlscale.report.curves import (
    eval_noise,
    final_loss,
    format_size,
    mean_curves,
    primary_eval_set,
    run_column,
)

YES, NO, INCONCLUSIVE = "yes", "no", "inconclusive"
FLAT_FRACTION = 0.10  # a change in k across all sizes below 10% of the median k counts as flat
MIN_RHO = 0.9  # "k grows with N" needs a near-monotone order too (5 sizes: one adjacent swap)
NOISE_RATIO_LINEAR = 3.0  # held-out error within 3x the eval noise: the straight line holds
NOISE_RATIO_CURVED = 6.0  # beyond 6x: the curve bends away from a line
FORM_MARGIN = 1.5  # one k(N) form must predict left-out sizes 1.5x better to be preferred
MAJORITY = 0.75  # share of compute budgets the largest model must win (or lose) for a verdict
MIN_BUDGETS = 3  # compute budgets shared by 2+ sizes needed to compare sizes at fixed compute


@dataclass
class Finding:
    """One finding checked: `numbers` holds the figures the evidence text quotes."""

    id: int
    claim: str
    verdict: str
    evidence: str
    numbers: dict = field(default_factory=dict)


def _ci(values) -> str:
    lo, hi = values
    return f"[{lo:.3g}, {hi:.3g}]"


# --------------------------------------------------------------------------- 1. k grows with N
def _k_trend(free: pd.DataFrame) -> dict:
    """Spearman rho of k vs N and the OLS slope of k vs log10 N with its 95% interval."""
    lx, k = np.log10(free["N"].to_numpy(float)), free["k"].to_numpy(float)
    fit = stats.linregress(lx, k)
    half = stats.t.ppf(0.975, len(k) - 2) * fit.stderr
    return {"rho": float(stats.spearmanr(free["N"], k).statistic), "slope": float(fit.slope),
            "slope_ci": (float(fit.slope - half), float(fit.slope + half)),
            "span_decades": float(np.ptp(lx)), "median_k": float(np.median(k))}


def k_grows_with_n(analysis, xs=("C", "D")) -> Finding:
    """Checked for the C-law and the D-law; one verdict when they agree, else inconclusive."""
    claim = "Larger models learn more efficiently per unit of compute and of data: k grows with N"
    checks = {x: _k_grows(analysis, x) for x in xs if x in analysis.free}
    if not checks:
        return Finding(1, claim, INCONCLUSIVE, "no per-size slopes (no model-ladder runs)")
    verdicts = {f.verdict for f in checks.values()}
    evidence = " | ".join(f"{x}-law: {f.evidence}" for x, f in checks.items())
    if len(verdicts) == 1:
        verdict = next(iter(verdicts))
    else:
        verdict, evidence = INCONCLUSIVE, "the C-law and the D-law disagree. " + evidence
    return Finding(1, claim, verdict, evidence, {x: f.numbers for x, f in checks.items()})


def _k_grows(analysis, x: str) -> Finding:
    claim = f"k(N) of the {x}-law increases with N"
    free = analysis.free.get(x)
    free = free.dropna(subset=["k"]) if free is not None else None
    if free is None or len(free) < 3:
        return Finding(1, claim, INCONCLUSIVE, "fewer than 3 model sizes with a free slope")
    t = _k_trend(free)
    rise_ci = tuple(v * t["span_decades"] for v in t["slope_ci"])  # change of k over the range
    text = (f"free per-size k from {format_size(free['N'].min())} to {format_size(free['N'].max())}"
            f": {', '.join(f'{k:.3g}' for k in free['k'])}; Spearman rho = {t['rho']:.2f}; slope"
            f" dk/dlog10 N = {t['slope']:.3g}, 95% CI {_ci(t['slope_ci'])}")
    law = analysis.fits.get(x)
    if law is not None:
        text += f"; law fit Kmax = {law.params['Kmax']:.3g}, N0 = {format_size(law.params['N0'])}"
        if law.bounds_hit:
            text += f" ({', '.join(law.bounds_hit)} on a bound: not estimates)"
    numbers = {**t, "k": free["k"].tolist(), "N": free["N"].tolist()}
    if t["slope_ci"][0] > 0 and t["rho"] >= MIN_RHO:
        return Finding(1, claim, YES, "k increases with N: " + text, numbers)
    if t["slope_ci"][1] < 0 or max(abs(v) for v in rise_ci) < FLAT_FRACTION * t["median_k"]:
        return Finding(1, claim, NO, "k does not increase with N: " + text, numbers)
    if t["slope_ci"][0] > 0:
        return Finding(1, claim, INCONCLUSIVE, f"k rises on average but not in order (Spearman "
                       f"rho {t['rho']:.2f} < {MIN_RHO}): " + text, numbers)
    return Finding(1, claim, INCONCLUSIVE, "the slope's interval includes 0 and is too wide to "
                   "call k flat: " + text, numbers)


# ------------------------------------------------------------- 2. log-log linear per model size
def loglog_linear(analysis, x: str = "C") -> Finding:
    """Three tests per size, all needed for "yes": the free log-log line fitted on the first part
    of the curve predicts the rest within NOISE_RATIO_LINEAR x the eval noise; it predicts the
    rest better than a flat line (the first part's mean: a flat noisy curve is also "predicted"
    within noise by a line of slope ~0); and its slope's 95% interval excludes 0."""
    claim = f"L vs {x} is a straight line in log-log for every model size"
    free, intra = analysis.free.get(x), analysis.intra_free.get(x)
    if free is None or intra is None:
        return Finding(2, claim, INCONCLUSIVE, "no per-size fits or intra-run split (too few "
                       "points per size)")
    curves = mean_curves(analysis.points, by="N", x=x)
    train = intra.train.to_frame() if intra.train is not None else None
    ratios, beats_flat, sloped, parts = {}, {}, {}, []
    for N, held in intra.heldout.groupby("N"):
        key = float(N)
        noise = eval_noise(curves[curves["N"] == N].sort_values("step")["L"])
        rmse = float(np.sqrt(np.mean((held["L_pred"] - held["L"]) ** 2)))
        ratios[key] = rmse / noise if noise > 0 else np.inf
        fitted_part = train[np.isclose(train["N"], N)]["L"] if train is not None else held["L"][:0]
        flat = float(np.sqrt(np.mean((fitted_part.mean() - held["L"]) ** 2))) \
            if len(fitted_part) else np.nan
        beats_flat[key] = bool(rmse < flat)
        row = free.loc[np.isclose(free["N"], N)].iloc[0]
        sloped[key] = bool(row["k_lo"] > 0 or row["k_hi"] < 0)
        parts.append(f"{format_size(N)}: R^2 {row['r2']:.3f}, k {row['k']:.3g} "
                     f"[{row['k_lo']:.3g}, {row['k_hi']:.3g}], held-out RMSE {rmse:.3g} = "
                     f"{ratios[key]:.1f}x noise vs flat line {flat:.3g}")
    worst = max(ratios.values())
    text = (f"free log-log line per size fitted on the first {analysis.intra_fraction:.0%} of "
            f"each curve, the rest predicted; " + "; ".join(parts))
    numbers = {"noise_ratio": ratios, "beats_flat": beats_flat, "slope_nonzero": sloped,
               "r2": dict(zip(free["N"], free["r2"], strict=True))}
    if worst <= NOISE_RATIO_LINEAR and all(beats_flat.values()) and all(sloped.values()):
        return Finding(2, claim, YES, text, numbers)
    if np.median(list(ratios.values())) > NOISE_RATIO_CURVED:
        return Finding(2, claim, NO, "the curves bend: " + text, numbers)
    why = []
    if worst > NOISE_RATIO_LINEAR:
        why.append("straight for some sizes only")
    if not all(beats_flat.values()):
        why.append("a flat line predicts " + ", ".join(
            format_size(n) for n, ok in beats_flat.items() if not ok) + " as well")
    if not all(sloped.values()):
        why.append("no slope distinguishable from 0 for " + ", ".join(
            format_size(n) for n, ok in sloped.items() if not ok))
    return Finding(2, claim, INCONCLUSIVE, "; ".join(why) + ": " + text, numbers)


# ------------------------------------------------------------------------ 3. k(N) saturates
def k_saturates(analysis, x: str = "C") -> Finding:
    claim = "k(N) saturates: gains in k shrink at the largest sizes"
    free = analysis.free.get(x)
    free = free.dropna(subset=["k"]) if free is not None else None
    if free is None or len(free) < 4:
        return Finding(3, claim, INCONCLUSIVE, "needs free slopes of 4+ sizes to compare a "
                       "saturating with a non-saturating k(N) out of sample")
    if _k_grows(analysis, x).verdict != YES:
        return Finding(3, claim, INCONCLUSIVE, "k(N) is not shown to grow with N over these "
                       "sizes, so there is no growth to saturate")
    N, k = free["N"].to_numpy(float), free["k"].to_numpy(float)
    sigma = sigma_from_interval(free["k_lo"], free["k_hi"])
    try:
        saturating = fit_k_of_n(N, k, sigma, form="saturating")
        loglinear = fit_k_of_n(N, k, sigma, form="loglinear")
    except (RuntimeError, ValueError) as err:
        return Finding(3, claim, INCONCLUSIVE, f"the k(N) forms could not be fitted ({err})")
    sat_err, lin_err = saturating.loso_error, loglinear.loso_error
    kmax, n0 = saturating.params["Kmax"], saturating.params["N0"]
    law = analysis.fits.get(x)
    if law is not None and law.bounds_hit:
        # A parameter stopped by its bound is not an estimate, and never a finding.
        return Finding(3, claim, INCONCLUSIVE, "saturation not identified in this range: the "
                       f"law's {', '.join(law.bounds_hit)} ended on a bound (Kmax = "
                       f"{law.params['Kmax']:.3g}, N0 = {format_size(law.params['N0'])})",
                       {"bounds_hit": list(law.bounds_hit)})
    text = (f"leave-one-size-out error of each size's free k: Kmax/(1+N0/N) {sat_err:.3g} vs "
            f"a + b log10 N (no ceiling) {lin_err:.3g}; fitted to all sizes: Kmax = {kmax:.3g}, "
            f"N0 = {format_size(n0)} (largest size {format_size(N.max())})")
    law_loso = analysis.loso.get(x)
    if law_loso is not None and law_loso.folds:
        summary = law_loso.summary()
        text += "; law LOSO (E refitted) MAPE: " + ", ".join(
            f"{name} {s['mape']:.2%}" for name, s in summary.items())
    numbers = {"loso_saturating": sat_err, "loso_loglinear": lin_err, "Kmax": kmax, "N0": n0}
    if saturating.on_bound:
        return Finding(3, claim, INCONCLUSIVE, "saturation not identified in this range: the "
                       "k(N) fit to the free slopes ended on a bound: " + text, numbers)
    if sat_err * FORM_MARGIN < lin_err and n0 < N.max():
        return Finding(3, claim, YES, "k bends over inside the size range: " + text, numbers)
    if lin_err * FORM_MARGIN < sat_err:
        return Finding(3, claim, NO, "k keeps growing like log N; no ceiling visible: " + text,
                       numbers)
    return Finding(3, claim, INCONCLUSIVE, "the two forms are not told apart: " + text, numbers)


# ----------------------------------------------------------------------------- 4. data reuse
def reuse_tolerance(analysis) -> Finding:
    """The laws' reuse test (`laws.plan.reuse_advice`): the largest tau such that it and every
    smaller tau are not significantly worse than unique data (one-sided Welch t-test)."""
    from rlscale.laws.plan import reuse_advice

    claim = "With total data fixed, reusing a subset tau times is nearly as good as unique data"
    reuse = analysis.split.reuse
    if len(reuse) == 0 or "tau" not in reuse:
        return Finding(4, claim, INCONCLUSIVE, "no data-reuse (tau) runs in the run table")
    if reuse["tau"].nunique() < 2:
        return Finding(4, claim, INCONCLUSIVE, "needs a tau = 1 run and at least one tau > 1")
    try:
        advice = reuse_advice(reuse[["tau", "step", "L", run_column(reuse)]]
                              .rename(columns={run_column(reuse): "run"}))
    except RlscaleError as err:
        return Finding(4, claim, INCONCLUSIVE, f"the reuse test could not run ({err})")
    per_tau = advice.per_tau
    base = per_tau[per_tau["tau"] == advice.baseline].iloc[0]
    later = per_tau[per_tau["tau"] > advice.baseline]
    parts = [f"tau {r.tau:g}: {r.gap:+.3f} (p = {r.p_value:.2g}{', worse' if r.worse else ''})"
             for r in later.itertuples()]
    text = (f"final L at tau = 1: {base['final_L']:.3f}; change vs tau = 1: " + ", ".join(parts)
            + f"; {advice.test}")
    tolerated = advice.recommended_tau
    numbers = {"largest_tolerated_tau": tolerated,
               "delta": dict(zip(later["tau"], later["gap"], strict=True)),
               "significant": {float(t): bool(w) for t, w in zip(later["tau"], later["worse"],
                                                                  strict=True)}}
    worse = later[later["worse"]]["tau"]
    if tolerated > advice.baseline:
        tail = f"; worse from tau = {worse.min():g}" if len(worse) else ""
        return Finding(4, claim, YES, f"no significant loss up to tau = {tolerated:g}{tail}: "
                       + text, numbers)
    return Finding(4, claim, NO, f"already worse at tau = {worse.min():g}: " + text, numbers)


# --------------------------------------------------------------------------- 5. group size G
def _common_data(df: pd.DataFrame, by: str) -> pd.DataFrame:
    """Rows up to the largest D every value of `by` reached, so all are compared at equal data."""
    if "D" not in df:
        return df
    limit = df.groupby(by)["D"].max().min()
    return df[df["D"] <= limit]


def group_size_effect(analysis) -> Finding:
    claim = "A larger rollout group G is more data-efficient"
    group = analysis.split.group
    if len(group) == 0 or "G" not in group:
        return Finding(5, claim, INCONCLUSIVE, "no rollout group size (G) runs in the run table")
    final = final_loss(_common_data(group, "G"), "G").sort_values("G")
    if len(final) < 2:
        return Finding(5, claim, INCONCLUSIVE, "needs at least 2 values of G")
    small, large = final.iloc[0], final.iloc[-1]
    rho = float(stats.spearmanr(final["G"], final["L"]).statistic) if len(final) > 2 else np.nan
    diff = large["L"] - small["L"]
    half = 1.96 * np.hypot(large["sem"], small["sem"])
    per_g = ", ".join(f"G {g:g}: {v:.3f}" for g, v in zip(final["G"], final["L"], strict=True))
    text = (f"final L at equal data: {per_g}; G {large['G']:g} vs G {small['G']:g}: "
            f"{diff:+.3f} (95% CI {_ci((diff - half, diff + half))})"
            + (f"; Spearman rho(G, L) = {rho:.2f}" if np.isfinite(rho) else ""))
    text += _compute_optimal_g(group)
    numbers = {"delta": float(diff), "delta_ci": (float(diff - half), float(diff + half)),
               "rho": rho, "final": dict(zip(final["G"], final["L"], strict=True))}
    if diff + half < 0:
        return Finding(5, claim, YES, text, numbers)
    if diff - half > 0:
        return Finding(5, claim, NO, "larger G is worse at equal data: " + text, numbers)
    return Finding(5, claim, INCONCLUSIVE, "the difference is within noise: " + text, numbers)


def _compute_optimal_g(group: pd.DataFrame) -> str:
    """Which G reaches the lowest loss at a few compute budgets (interpolated in log C)."""
    if "C" not in group:
        return ""
    curves = mean_curves(group[group["C"] > 0], by="G", x="C")
    winners = _winners_at_budgets(curves, "G", "C", n_budgets=4)
    if not winners:
        return ""
    return "; compute-optimal G by budget: " + ", ".join(f"C={c:.2g}: G {g:g}"
                                                        for c, g, _ in winners)


# ---------------------------------------------------------------- 7. fixed-compute comparison
def _winners_at_budgets(curves: pd.DataFrame, by: str, x: str, n_budgets: int = 8):
    """[(budget, winner, contenders)] where 2+ curves cover the budget: lowest L wins."""
    ranges = curves.groupby(by)[x].agg(["min", "max"])
    lo, hi = ranges["min"].min(), ranges["max"].max()
    out = []
    for budget in np.geomspace(lo, hi, n_budgets + 2)[1:-1]:
        covering = ranges[(ranges["min"] <= budget) & (ranges["max"] >= budget)].index
        if len(covering) < 2:
            continue
        losses = {}
        for value in covering:
            c = curves[curves[by] == value].sort_values(x)
            losses[value] = float(10 ** np.interp(np.log10(budget), np.log10(c[x]),
                                                  np.log10(c["L"])))
        out.append((float(budget), min(losses, key=losses.get), sorted(covering)))
    return out


def fixed_compute(analysis) -> Finding:
    claim = "Under a fixed compute budget, the larger model reaches the lower loss"
    if len(analysis.points) == 0 or analysis.points["N"].nunique() < 2:
        return Finding(7, claim, INCONCLUSIVE, "needs runs of 2+ model sizes")
    points = analysis.points[analysis.points["C"] > 0]  # step 0 has no compute
    winners = _winners_at_budgets(mean_curves(points, by="N", x="C"), "N", "C")
    if len(winners) < MIN_BUDGETS:
        return Finding(7, claim, INCONCLUSIVE, f"only {len(winners)} compute budget(s) reached "
                       f"by two sizes; needs {MIN_BUDGETS}")
    largest_wins = [w == max(c) for _, w, c in winners]
    share = float(np.mean(largest_wins))
    text = (f"at {len(winners)} budgets covered by 2+ sizes, the largest size there wins "
            f"{sum(largest_wins)}/{len(winners)}: " + ", ".join(
                f"C={b:.2g}: {format_size(w)}" for b, w, _ in winners))
    numbers = {"share_largest_wins": share,
               "winners": [(b, float(w)) for b, w, _ in winners]}
    if share >= MAJORITY:
        return Finding(7, claim, YES, text, numbers)
    if share <= 1 - MAJORITY:
        return Finding(7, claim, NO, text, numbers)
    return Finding(7, claim, INCONCLUSIVE, "a trade-off between sizes: " + text, numbers)


# ----------------------------------------------------------------------- 8. benchmarks move
def eval_sets_improve(analysis) -> Finding:
    claim = "In-domain benchmarks improve with RL; out-of-domain ones barely move"
    df = analysis.table.df if hasattr(analysis.table, "df") else analysis.table
    if "eval_set" not in df or df["eval_set"].nunique() < 2:
        return Finding(8, claim, INCONCLUSIVE, "only one eval set: nothing to compare")
    run = run_column(df)
    ladder_runs = analysis.split.ladder[run].unique() if len(analysis.split.ladder) else []
    df = df[df[run].isin(ladder_runs)] if len(ladder_runs) else df
    parts, numbers = [], {}
    for name, rows in df.groupby("eval_set", sort=True):
        steps = np.sort(rows["step"].unique())
        n = max(2, len(steps) // 10)
        first = rows[rows["step"].isin(steps[:n])]["L"]
        last = rows[rows["step"].isin(steps[-n:])]["L"]
        test = stats.ttest_ind(first, last, equal_var=False) if len(first) > 1 else None
        numbers[str(name)] = {"first": float(first.mean()), "last": float(last.mean()),
                              "p": float(test.pvalue) if test is not None else np.nan}
        parts.append(f"{name}: L {first.mean():.3f} -> {last.mean():.3f}"
                     + (f" (p = {test.pvalue:.2g})" if test is not None else ""))
    primary = primary_eval_set(df)
    return Finding(8, claim, INCONCLUSIVE,
                   f"per eval set (ladder runs): {'; '.join(parts)}. The run table does not say "
                   f"which sets are out of domain (primary: {primary}), so the contrast is not "
                   "judged", numbers)


def check_findings(analysis) -> list[Finding]:
    """Every finding the data can speak to, in the paper's order."""
    return [k_grows_with_n(analysis), loglog_linear(analysis), k_saturates(analysis),
            reuse_tolerance(analysis), group_size_effect(analysis), fixed_compute(analysis),
            eval_sets_improve(analysis)]
