"""Everything the report shows, computed once: laws fitted, protocols run, per-size slopes.

`analyse(table)` never raises for missing pieces: a step that cannot run (too few sizes, no
bootstrap module yet, a law that fails) leaves its slot empty and records why in `notes`, so the
report shows the reason instead of crashing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from rlscale.errors import RlscaleError
from rlscale.report.curves import (
    Split,
    eval_noise,
    free_slopes,
    law_points,
    run_column,
    split_experiments,
)

PAPER_LAW = "loglinear_kn"  # log10 L = -k(N) log10 X + E(N), k(N) = Kmax / (1 + N0/N)
INTRA_FRACTION = 0.25  # the paper's intra-run protocol fits about the first quarter of steps
BOOTSTRAP_SAMPLES = 200
BAND_LEVEL = 0.9  # prediction bands of the protocols; their coverage of held-out points is shown


@dataclass
class Analysis:
    """The inputs of every figure and finding. Dicts are keyed by the x column ('C' or 'D')."""

    table: object
    split: Split
    points: pd.DataFrame  # the ladder's law table (N, run, step, C, D, T, L)
    steps: pd.DataFrame | None  # step records of the ladder runs (response length ...)
    fits: dict = field(default_factory=dict)  # x -> FittedLaw of the paper's law
    free: dict = field(default_factory=dict)  # x -> DataFrame N, k, k_lo, k_hi, E, r2, n
    boot: dict = field(default_factory=dict)  # x -> laws.bootstrap.BootstrapResult
    k_band: dict = field(default_factory=dict)  # x -> DataFrame N, lo, hi (bootstrap)
    intra: dict = field(default_factory=dict)  # x -> ValidationResult of the paper's law
    intra_free: dict = field(default_factory=dict)  # x -> ValidationResult of free per-size lines
    intra_fraction: float = INTRA_FRACTION
    warmup: int = 0  # steps 1..warmup left out of every fit (the warm-up clip); step 0 always
    noise: pd.DataFrame | None = None  # per size: the eval noise floor and the run's gain
    inter: dict = field(default_factory=dict)  # x -> {variant: ValidationResult}
    loso: dict = field(default_factory=dict)  # x -> LosoResult
    consistency: object | None = None  # laws.consistency.ConsistencyResult (C-law vs D-law)
    bands: dict = field(default_factory=dict)  # (x, protocol) -> ProtocolBand (intra, inter_...)
    rivals: dict = field(default_factory=dict)  # x -> laws.rivals.RivalsTable
    run_forecasts: pd.DataFrame | None = None  # per size: the first half forecasts the last step
    notes: list[str] = field(default_factory=list)

    @property
    def sizes(self) -> list[float]:
        return sorted(self.points["N"].unique()) if len(self.points) else []


def _ladder_steps(table, split: Split) -> pd.DataFrame | None:
    steps = getattr(table, "steps", None)
    run = run_column(split.ladder)
    if steps is None or len(steps) == 0 or run not in steps:
        return None
    return steps[steps[run].isin(split.ladder[run].unique())]


def _attempt(analysis: Analysis, what: str, action):
    """Run one analysis step; on a law or data error note why and return None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fit warnings reach the report through its notes
            return action()
    except (RlscaleError, ValueError, np.linalg.LinAlgError) as err:
        analysis.notes.append(f"{what}: not computed ({err})")
        return None


def k_band(result, grid: np.ndarray) -> pd.DataFrame:
    """k(N) on `grid`: 2.5-97.5 percentiles over the bootstrap replicates of the paper's law."""
    curves = np.array([replicate.k(grid) for replicate in result.replicates])
    lo, hi = np.nanpercentile(curves, [2.5, 97.5], axis=0)
    return pd.DataFrame({"N": grid, "lo": lo, "hi": hi})


def analyse(table, *, progress: bool = True, xs=("C", "D"),
            bootstrap_samples: int = BOOTSTRAP_SAMPLES, warmup: int = 0) -> Analysis:
    """Fit the paper's law and run the prediction protocols on the ladder runs of `table`.

    bootstrap_samples: refits for the parameter intervals and the k(N) band (0: none).
    warmup: the warm-up clip, steps 1..warmup left out of every fit (the paper's code drops up to
    the first 4 points); step 0 is never fitted."""
    from rlscale.laws import get_law
    from rlscale.laws.validate import inter_model, intra_run, leave_one_size_out

    split = split_experiments(table)
    every_point = law_points(split.ladder)
    points = every_point[~every_point["step"].between(1, warmup)].reset_index(drop=True) \
        if warmup > 0 and "step" in every_point else every_point
    analysis = Analysis(table=table, split=split, points=points,
                        steps=_ladder_steps(table, split), warmup=warmup,
                        noise=noise_floor(split.ladder))
    if len(points) == 0:
        analysis.notes.append("no runs with unique data (tau = 1) on the primary eval set: "
                              "no laws fitted")
        return analysis
    sizes = np.sort(points["N"].unique())
    grid = np.geomspace(sizes[0] / 2, sizes[-1] * 4, 60)
    jobs = []
    for x in xs:
        if x not in points or points[x].isna().all():
            analysis.notes.append(f"{x}: column absent from the run table; {x}-law skipped")
            continue
        jobs += [
            (f"{x}-law: free per-size slopes", lambda x=x: analysis.free.__setitem__(
                x, free_slopes(points, x, min_step=warmup + 1))),
            (f"{x}-law: fit {PAPER_LAW}", lambda x=x: analysis.fits.__setitem__(
                x, get_law(PAPER_LAW).fit(points, x=x))),
            (f"{x}-law: bootstrap ({bootstrap_samples} refits)", lambda x=x: _bootstrap(
                analysis, points, x, grid, bootstrap_samples)),
            (f"{x}-law: intra-run protocol", lambda x=x: analysis.intra.__setitem__(
                x, intra_run(points, PAPER_LAW, x=x, fraction=INTRA_FRACTION))),
            (f"{x}-law: intra-run, free lines", lambda x=x: analysis.intra_free.__setitem__(
                x, intra_run(points, "loglinear", x=x, fraction=INTRA_FRACTION))),
            (f"{x}-law: inter-model protocol", lambda x=x: analysis.inter.__setitem__(
                x, _inter_variants(analysis, points, x, inter_model))),
            (f"{x}-law: leave-one-size-out", lambda x=x: analysis.loso.__setitem__(
                x, _loso(analysis, points, x, leave_one_size_out))),
            (f"{x}-law: prediction bands and their coverage", lambda x=x: _bands(
                analysis, x, bootstrap_samples)),
        ]
        if x == "C":  # the D-law's rivals differ from the C-law's only by tokens per prompt
            jobs.append((f"{x}-law: rival forms", lambda x=x: analysis.rivals.__setitem__(
                x, _rivals(points, x))))
    if "C" in xs and "C" in points and bootstrap_samples >= 2:
        jobs.append(("forecasting each run from its first half", lambda: setattr(
            analysis, "run_forecasts", run_forecasts(points, "C"))))
    if {"C", "D"} <= set(xs) and {"C", "D"} <= set(points.columns):
        jobs.append(("C-law vs D-law consistency", lambda: setattr(
            analysis, "consistency", _consistency(points))))
    if bootstrap_samples < 2:
        jobs = [job for job in jobs if "bootstrap" not in job[0] and "bands" not in job[0]]
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task("fitting", total=len(jobs))
        for what, action in jobs:
            bar.update(task, description=what)
            _attempt(analysis, what, action)
            bar.advance(task)
    return analysis


def noise_floor(ladder: pd.DataFrame) -> pd.DataFrame | None:
    """Per size: the eval noise floor and the gain of the run-averaged curve.

    floor: the std of L for a fixed policy, as measured by re-evaluating the step-0 policy with
    other sampling seeds (`noise_std` of the step-0 eval, config `eval_noise_repeats`); where it
    was not measured, the estimator's own standard error (`stderr`); else the model-free
    `eval_noise` of the curve. gain: L at step 0 minus the mean L of the last 3 evaluations.
    """
    if len(ladder) == 0 or "L" not in ladder:
        return None
    run = run_column(ladder)
    rows = []
    for N, group in ladder.groupby("N", sort=True):
        curve = group.groupby("step")["L"].mean().sort_index()
        if len(curve) < 4 or curve.index[0] != 0:
            continue
        start = group[group["step"] == 0]
        measured = start["noise_std"].dropna() if "noise_std" in start else pd.Series(dtype=float)
        stderr = group["stderr"].dropna() if "stderr" in group else pd.Series(dtype=float)
        if len(measured):
            floor, source = float(measured.mean()), "measured (std over re-evaluations)"
        elif len(stderr):
            floor, source = float(stderr.median()), "estimator standard error"
        else:
            floor, source = eval_noise(curve.to_numpy()), "successive differences"
        gain = float(curve.iloc[0] - curve.iloc[-3:].mean())
        estimators = sorted(group["estimator"].dropna().unique()) if "estimator" in group else []
        rows.append({"N": float(N), "floor": floor, "floor_source": source,
                     "repeats": int(start["noise_repeats"].max()) if "noise_repeats" in start
                     and start["noise_repeats"].notna().any() else 0,
                     "stderr": float(stderr.median()) if len(stderr) else np.nan,
                     "gain": gain, "gain_over_floor": gain / floor if floor > 0 else np.inf,
                     "runs": int(group[run].nunique()),
                     "estimator": ", ".join(estimators) or "sampled"})
    return pd.DataFrame(rows) if rows else None


def _consistency(points: pd.DataFrame):
    from rlscale.laws.consistency import consistency

    return consistency(points, PAPER_LAW)


def _loso(analysis: Analysis, points: pd.DataFrame, x: str, leave_one_size_out):
    """Leave-one-size-out of the paper's law (E of the left-out size refitted: the free
    intercept cannot be predicted) and of the parametric-E variant, fully out of sample."""
    result = leave_one_size_out(points, [PAPER_LAW], x=x, refit_intercept=True)
    for law, why in result.failures.items():
        analysis.notes.append(f"{x}-law leave-one-size-out of {law}: not computed ({why})")
    return result


def _bootstrap(analysis: Analysis, points: pd.DataFrame, x: str, grid: np.ndarray,
               samples: int) -> None:
    from rlscale.laws.bootstrap import bootstrap

    result = bootstrap(points, PAPER_LAW, x=x, n=samples, seed=0)
    analysis.boot[x] = result
    analysis.k_band[x] = k_band(result, grid)


@dataclass
class ProtocolBand:
    """A protocol's BAND_LEVEL prediction band on its held-out points, and how many it covers."""

    protocol: str
    x: str
    heldout: pd.DataFrame  # N, step, X, L, L_pred, lo, hi
    coverage: dict  # laws.bootstrap.coverage: overall, by_size, level, n


def protocol_band(result, samples: int, level: float = BAND_LEVEL) -> ProtocolBand:
    """Bootstrap a protocol's training part (laws.bootstrap: correlated-residual model), band its
    held-out points and measure the coverage."""
    from rlscale.laws.bootstrap import bootstrap_protocol, coverage

    boot = bootstrap_protocol(result, n=samples, seed=0, level=level)
    heldout = result.heldout.copy()
    heldout["lo"], heldout["hi"] = boot.band(heldout["N"], heldout["X"], step=heldout["step"])
    return ProtocolBand(result.protocol, result.x, heldout, coverage(boot, result.heldout))


def _bands(analysis: Analysis, x: str, samples: int) -> None:
    """Bands for the intra-run and the fully out-of-sample inter-model protocols (the ones whose
    every parameter is fitted on the training part)."""
    samples = max(2, min(samples, 100))  # coverage is stable from ~60 refits (tests)
    candidates = {"intra": analysis.intra.get(x),
                  "inter_out_of_sample": (analysis.inter.get(x) or {}).get("out_of_sample")}
    for name, result in candidates.items():
        if result is not None:
            band = _attempt(analysis, f"{x}-law {name} band",
                            lambda result=result: protocol_band(result, samples))
            if band is not None:
                analysis.bands[(x, name)] = band


def run_forecasts(points: pd.DataFrame, x: str = "C", *, samples: int = 40) -> pd.DataFrame:
    """Per size, `rlscale predict RUN_DIR --until LAST` as if the run had stopped at half its
    steps: the forecast of its last step from its own first half, the band, what it did."""
    from rlscale.laws.forecast import forecast_run

    rows = []
    for N, group in points.groupby("N", sort=True):
        curve = group.groupby("step", as_index=False)[[x, "L"]].mean().assign(N=N)
        last = float(curve["step"].max())
        half = curve[curve["step"] <= last / 2]
        forecast = forecast_run(half, last, x=x, n=samples, check_last=0)  # no drift check here
        actual = float(curve.loc[curve["step"] == last, "L"].iloc[0])
        t = forecast.target
        rows.append({"N": float(N), "fitted_to_step": float(half["step"].max()), "step": last,
                     "L_pred": t["L_pred"], "lo": t["lo"], "hi": t["hi"], "L": actual,
                     "inside": bool(t["lo"] <= actual <= t["hi"]),
                     "error": abs(t["L_pred"] - actual) / actual})
    return pd.DataFrame(rows)


def _rivals(points: pd.DataFrame, x: str):
    """The rival forms ranked on the intra-run and leave-one-size-out protocols; for the C-law of
    a table with D, the joint C/D law is one of them."""
    from rlscale.laws.rivals import RIVALS, rank_rivals
    from rlscale.laws.validate import predictive_law

    laws = list(RIVALS)
    joint = predictive_law(points, x)
    if "joint" in joint:
        laws.insert(2, joint)
    return rank_rivals(points, x, laws=laws, fraction=INTRA_FRACTION)


def _inter_variants(analysis: Analysis, points: pd.DataFrame, x: str, inter_model) -> dict:
    """The largest size predicted from the others: fully out of sample (parametric E(N)) and the
    paper's variant (k predicted, E fitted on the target's own points)."""
    out = {}
    # law None: laws.validate.predictive_law, the joint C/D law for C (the table has D).
    for name, law, refit in (("out_of_sample", None, False), ("refit_intercept", PAPER_LAW, True)):
        result = _attempt(analysis, f"{x}-law inter-model ({name})",
                          lambda law=law, refit=refit: inter_model(points, law, x=x,
                                                                   refit_intercept=refit))
        if result is not None:
            out[name] = result
    return out
