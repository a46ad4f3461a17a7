"""Forecast a run in progress: the rest of its curve from its own points (and a fitted ladder).

`forecast_run(table, until=...)` takes one run's law table (one model size; `rlscale predict
RUN_DIR --until STEP`), fits its curve and predicts L up to a target step, compute or data
amount, with a prediction band (laws.bootstrap: correlated residuals, parameter refits).

- Without a ladder the run's own line is fitted (free log-log line, `loglinear`).
- With a ladder (a FittedLaw of the paper's law from `rlscale fit`, or any law with k(N)), the
  slope k(N) at the run's size comes from the ladder and only the intercept is fitted on the
  run's points (the paper's inter-model variant): a young run borrows the ladder's slope. Its
  band holds the intercept's and the noise's uncertainty, not the ladder slope's error: that
  is what the drift check measures, and the run's own-line forecast is given beside it.
- A check first: the same forecast made without the run's last `check_last` points, and whether
  those points fall inside its band (a run drifting off its law says so here).

Future steps map to X by the run's own recent pace: X grows linearly in the step (C = 6 N T with
tokens per step roughly constant, D = prompts x step), fitted on the last half of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import FittedLaw, format_size, prepare_points
from rlscale.laws.bootstrap import bootstrap, coverage
from rlscale.laws.validate import predict

TARGETS = ("step", "C", "D")
MIN_POINTS = 6  # fewer fitted points cannot carry a line, its AR(1) and the refits
CHECK_LAST = 3


@dataclass
class RunForecast:
    """The forecast of one run: the path to the target with its band, and the drift check."""

    N: float
    x: str
    law: str
    level: float
    observed: pd.DataFrame  # step, X, L of the run (after the warm-up clip)
    path: pd.DataFrame  # step, X, L_pred, lo, hi from the last observed step to the target
    target: dict  # kind, value, step, X, L_pred, lo, hi
    check: dict | None  # points held back, inside (bool per point), coverage, drifting
    notes: list[str] = field(default_factory=list)
    own_line: dict | None = None  # with a ladder: the run's own line's target forecast

    def to_dict(self) -> dict:
        return {"N": self.N, "x": self.x, "law": self.law, "level": self.level,
                "target": self.target, "own_line": self.own_line, "check": self.check,
                "notes": self.notes,
                "path": self.path.to_dict(orient="records"),
                "observed": self.observed.to_dict(orient="records")}


def forecast_run(table: pd.DataFrame, until: float, *, kind: str = "step", x: str = "C",
                 ladder: FittedLaw | None = None, check_last: int = CHECK_LAST,
                 level: float = 0.9, n: int = 200, seed: int = 0, warmup: int = 0,
                 path_points: int = 12) -> RunForecast:
    """Forecast one run's L at `until` (a step, or an amount of C or D: `kind`)."""
    if kind not in TARGETS:
        raise LawError(f"the target must be one of {', '.join(TARGETS)}, got {kind!r}")
    if not (isinstance(until, int | float) and math.isfinite(until) and until > 0):
        raise LawError(f"the target {kind} must be a finite number above 0, got {until!r}")
    if x not in table.columns or table[x].isna().all():
        raise LawError(f"the run has no {x} column to forecast along")
    points = prepare_points(table, x, warmup=warmup)
    if len(points.sizes) != 1:
        raise LawError(f"forecasting a run needs one model size, the data has {len(points.sizes)} "
                       f"({', '.join(format_size(s) for s in points.sizes)}): give one run directory")
    size = float(points.sizes[0])
    if len(points) < MIN_POINTS:
        raise LawError(f"the run has {len(points)} evaluated points after step {warmup}; a forecast "
                       f"needs at least {MIN_POINTS} (let it run longer, or lower --warmup)")
    observed = pd.DataFrame({"step": points.step, "X": points.X, "L": points.L})
    pace = _pace(observed)
    target_step, target_x = _target(observed, pace, until, kind, x)
    law = _law(ladder, size)
    notes = [] if ladder is None else [f"slope k({format_size(size)}) = "
                                       f"{float(ladder.k(size)):.4g} from the ladder fit"]

    def fit_and_band(fit_rows: pd.DataFrame, ask: pd.DataFrame, law=law):
        frame = fit_rows.rename(columns={"X": x}).assign(N=size)
        boot = bootstrap(frame, law, x, n=n, seed=seed, level=level)
        lo, hi = boot.band(np.full(len(ask), size), ask["X"], step=ask["step"])
        return boot, predict(boot.fitted, np.full(len(ask), size), ask["X"]), lo, hi

    check = None
    if check_last > 0 and len(observed) - check_last >= MIN_POINTS:
        early, late = observed.iloc[:-check_last], observed.iloc[-check_last:]
        boot, pred, lo, hi = fit_and_band(early, late)
        inside = (late["L"].to_numpy() >= lo) & (late["L"].to_numpy() <= hi)
        check = {"points": int(check_last), "steps": late["step"].tolist(),
                 "L": late["L"].tolist(), "L_pred": pred.tolist(), "lo": lo.tolist(),
                 "hi": hi.tolist(), "inside": inside.tolist(),
                 "coverage": coverage(boot, late.assign(N=size))["overall"],
                 "drifting": bool(not inside.any())}
    elif check_last > 0:
        notes.append(f"no drift check: {len(observed)} points leave fewer than {MIN_POINTS} to "
                     f"fit without the last {check_last}")
    last = observed["step"].iloc[-1]
    steps = np.unique(np.round(np.linspace(last, target_step, path_points + 1)[1:]))
    ask = pd.DataFrame({"step": steps, "X": _x_at(pace, steps)})
    if kind != "step":
        ask.loc[ask.index[-1], ["step", "X"]] = [target_step, target_x]
    boot, pred, lo, hi = fit_and_band(observed, ask)
    path = ask.assign(L_pred=pred, lo=lo, hi=hi)
    if np.any(~np.isfinite(pred)) or np.any((pred <= 0) | (pred >= 1)):
        raise LawError("the forecast leaves (0, 1) before the target: the run's line cannot be "
                       "extrapolated that far")
    end = path.iloc[-1]

    def at_target(L_pred, lo, hi):
        return {"kind": kind, "value": float(until), "step": float(end["step"]),
                "X": float(end["X"]), "L_pred": float(L_pred), "lo": float(lo), "hi": float(hi)}

    target = at_target(end["L_pred"], end["lo"], end["hi"])
    own_line = None
    if ladder is not None:
        _, own, own_lo, own_hi = fit_and_band(observed, ask.iloc[-1:], _law(None, size))
        own_line = at_target(own[0], own_lo[0], own_hi[0])
    if target_step > 4 * last:
        notes.append(f"the target is {target_step / last:.1f}x the steps observed: a long "
                     "extrapolation, read the band rather than the line")
    return RunForecast(size, x, "own line (loglinear)" if ladder is None else
                       f"the ladder's k({format_size(size)}), the run's own E", level, observed,
                       path, target, check, notes, own_line)


def _law(ladder: FittedLaw | None, size: float):
    """The run's own line, or the ladder's slope at its size with the intercept free."""
    from rlscale.laws.validate import resolve_law

    if ladder is None:
        return resolve_law("loglinear")
    try:
        k = float(ladder.k(size))
    except (LawError, KeyError, ValueError) as err:
        raise LawError(f"the ladder law {ladder.law} gives no slope k(N) at "
                       f"{format_size(size)} ({err})") from None
    if not (math.isfinite(k) and k > 0):
        raise LawError(f"the ladder gives k({format_size(size)}) = {k:g}; a forecast needs k > 0")
    return _FixedSlope(k)


class _FixedSlope:
    """log10 L = -k log10 X + E with k given and E fitted on the run (least squares in L, as
    every law here). Enough of a Law for the bootstrap (`fit(points_or_table, x, init=...)`)."""

    name = "loglinear_fixed_k"

    def __init__(self, k: float):
        self.k = k

    def fit(self, data, x: str = "C", *, init=None, **_):
        from rlscale.laws.loglinear import solve_intercepts

        points = prepare_points(data, x)
        size = float(points.sizes[0])
        E = float(solve_intercepts(np.full(len(points), self.k), points, "linear")[0])
        return FittedLaw(law="loglinear", x=x, params={"k": {size: self.k}, "E": {size: E}},
                         options={}, sizes=[size])


def _pace(observed: pd.DataFrame) -> tuple[float, float]:
    """(slope, intercept) of X against step over the last half of the run."""
    recent = observed.iloc[len(observed) // 2:]
    if recent["step"].nunique() < 2:
        recent = observed
    slope, intercept = np.polyfit(recent["step"], recent["X"], 1)
    if slope <= 0:
        raise LawError("the run's X does not grow with its steps; cannot map steps to X")
    return float(slope), float(intercept)


def _x_at(pace, steps):
    return pace[0] * np.asarray(steps, float) + pace[1]


def _target(observed: pd.DataFrame, pace, until: float, kind: str, x: str) -> tuple[float, float]:
    """(step, X) of the target; a target inside the observed range is an error."""
    last_step, last_x = float(observed["step"].iloc[-1]), float(observed["X"].iloc[-1])
    if kind == "step":
        if until <= last_step:
            raise LawError(f"step {until:g} is inside the observed run (last evaluated step "
                           f"{last_step:g}); nothing to forecast")
        return float(until), float(_x_at(pace, until))
    if kind != x:
        raise LawError(f"a {kind} target needs the forecast along {kind} (--x {kind}), not {x}")
    if until <= last_x:
        raise LawError(f"{kind} = {until:.4g} is inside the observed run (reached {last_x:.4g} at "
                       f"step {last_step:g}); nothing to forecast")
    return float((until - pace[1]) / pace[0]), float(until)
