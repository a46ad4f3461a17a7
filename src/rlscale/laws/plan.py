"""Planning with a fitted law: which model size for a compute budget, a data budget or a target
loss, and how much to reuse data when unique data are scarce.

Budgets convert through C = N D phi (phi = C / (N D) = 6 x tokens per prompt, counting the prompt
and all its rollouts) and T = C / (6 N); steps = D / prompts_per_step. phi is needed whenever the
law's X differs from the budget's; give it (or tokens per prompt), or estimate it from a run table
(`rlscale.laws.consistency.estimate_phi`).

For each candidate size the predicted loss (with a bootstrap band if a BootstrapResult is given);
on a continuous range of sizes (laws that predict any N, e.g. a parametric E(N)) the optimum by a
log-spaced grid refined with a bounded scalar minimisation.

`frontier`: the loss every candidate size reaches across a grid of budgets, with bands and the
optimal size per budget (`rlscale.report.plan_figure` draws it). `plan_from_files` is what
`rlscale plan` runs: a fit or bootstrap JSON, phi and bands from a run table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import ttest_ind

from rlscale.errors import DataError, LawError
from rlscale.laws.base import FittedLaw, format_size
from rlscale.laws.validate import can_predict_unseen_size, predict
from rlscale.units import FLOPS_PER_PARAM_TOKEN, training_flops, training_tokens

GOALS = ("compute", "data", "target_loss")
GRID_POINTS = 401  # sizes on the continuous range's log grid before refinement


@dataclass
class PlanOption:
    """One model size with its budget: C (paper FLOPs), D (prompts), T (tokens), steps, loss L and,
    with a bootstrap, the band [L_lo, L_hi] (and for a target loss the band of C needed)."""

    N: float
    C: float | None
    D: float | None
    T: float | None
    steps: float | None
    L: float
    L_lo: float | None = None
    L_hi: float | None = None
    C_lo: float | None = None
    C_hi: float | None = None


@dataclass
class PlanResult:
    goal: str
    value: float
    law: str
    x: str
    phi: float | None
    prompts_per_step: int
    options: list[PlanOption]
    best: PlanOption | None
    continuous: PlanOption | None = None
    size_range: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    frontier: pd.DataFrame | None = None  # `frontier`, when asked for

    def to_dict(self) -> dict:
        out = {"goal": self.goal, "value": self.value, "law": self.law, "x": self.x,
               "phi": self.phi, "prompts_per_step": self.prompts_per_step,
               "options": [asdict(o) for o in self.options],
               "best": asdict(self.best) if self.best else None,
               "continuous": asdict(self.continuous) if self.continuous else None,
               "size_range": list(self.size_range) if self.size_range else None,
               "notes": self.notes}
        if self.frontier is not None:
            attrs = self.frontier.attrs
            out["frontier"] = frontier_records(self.frontier)
            out["frontier_kind"] = attrs.get("kind")
            out["frontier_level"] = attrs.get("level")
            out["frontier_notes"] = list(attrs.get("notes", []))
        return out


class _Budget:
    """Converts between C, D and T for a size with phi, and evaluates the law on a budget."""

    def __init__(self, fitted: FittedLaw, phi: float | None, prompts_per_step: int):
        self.fitted, self.phi, self.prompts_per_step = fitted, phi, prompts_per_step

    def amounts(self, N: float, kind: str, value: float) -> dict[str, float | None]:
        """C, D, T and steps for `value` of `kind` (C, D or T) at size N (None where phi is needed
        and unknown)."""
        C = {"C": value, "T": training_flops(N, value)}.get(kind)
        if kind == "D":
            C = N * value * self.phi if self.phi else None
        D = value if kind == "D" else (C / (N * self.phi) if C is not None and self.phi else None)
        T = training_tokens(N, C) if C is not None else None
        steps = D / self.prompts_per_step if D is not None else None
        return {"C": C, "D": D, "T": T, "steps": steps}

    def x_value(self, N: float, kind: str, value: float, fitted: FittedLaw | None = None) -> float:
        x = (fitted or self.fitted).x
        amount = self.amounts(N, kind, value)[x]
        if amount is None:
            raise LawError(f"the law is in {x} and the budget in {kind}: converting needs phi = C/(N D) "
                           "(give tokens per prompt, phi, or a run table to estimate it)")
        return amount

    def loss(self, N: float, kind: str, value: float, fitted: FittedLaw | None = None) -> float:
        return float(predict(fitted or self.fitted, [N], [self.x_value(N, kind, value, fitted)])[0])

    def solve_x(self, N: float, target: float, fitted: FittedLaw | None = None) -> float:
        """The law's X at which L(N, X) = target (L decreasing in X); inf if never reached."""
        fitted = fitted or self.fitted
        grid = np.arange(-3.0, 40.0, 0.25)  # log10 X, far wider than any real budget
        loss = predict(fitted, np.full(grid.shape, N), 10.0**grid)
        below = np.flatnonzero(loss <= target)
        if len(below) == 0:
            return math.inf
        i = below[0]
        if i == 0:
            return float(10.0 ** grid[0])
        root = brentq(lambda lx: float(predict(fitted, [N], [10.0**lx])[0]) - target,
                      grid[i - 1], grid[i], xtol=1e-10)
        return float(10.0**root)


def plan(fitted: FittedLaw, goal: str, value: float, *, sizes=None, phi: float | None = None,
         tokens_per_prompt: float | None = None, prompts_per_step: int = 512, bootstrap=None,
         size_range: tuple[float, float] | None = None, continuous: bool = True) -> PlanResult:
    """The best model size for a goal:
    - 'compute': a budget of C FLOPs (paper definition, 6 N T): the size with the lowest loss;
    - 'data': a budget of D prompts: the size with the lowest loss (and its compute);
    - 'target_loss': reach L = value at the least compute C.
    sizes: candidate sizes (default: the sizes the law was fitted on). bootstrap: a
    BootstrapResult of the same law, for bands. size_range: the continuous range (default: the
    candidates' span); skipped for laws that cannot predict an unseen size."""
    if goal not in GOALS:
        raise LawError(f"goal must be one of {', '.join(GOALS)}, got {goal!r}")
    if not math.isfinite(value) or value <= 0 or (goal == "target_loss" and value >= 1):
        limit = " and below 1" if goal == "target_loss" else ""
        raise LawError(f"{goal} must be a finite number above 0{limit}, got {value:g}")
    phi = _checked_inputs(fitted, phi, tokens_per_prompt, prompts_per_step, bootstrap, "plan's")
    budget = _Budget(fitted, phi, prompts_per_step)
    candidates = _candidates(fitted, sizes)
    option = {"compute": lambda N: _option_budget(budget, N, "C", value, bootstrap),
              "data": lambda N: _option_budget(budget, N, "D", value, bootstrap),
              "target_loss": lambda N: _option_target(budget, N, value, bootstrap)}[goal]
    options = [option(N) for N in candidates]
    score = (lambda o: o.C if o.C is not None else math.inf) if goal == "target_loss" else (lambda o: o.L)
    reachable = [o for o in options if math.isfinite(score(o))]
    notes = []
    if goal != "target_loss":
        # L = 1 - pass@1 is at most 1: a law that predicts more is extrapolated past its range.
        beyond = [o for o in reachable if not 0 < o.L < 1]
        if len(beyond) == len(reachable):
            raise LawError(f"the {goal} budget {value:g} is outside the range the law describes: it "
                           f"predicts L outside (0, 1) for every candidate size "
                           f"(e.g. {format_size(beyond[0].N)}: L = {beyond[0].L:.3g})")
        if beyond:
            notes.append("no prediction for " + ", ".join(format_size(o.N) for o in beyond)
                         + ": the law gives L outside (0, 1) there (budget outside its range)")
        reachable = [o for o in reachable if 0 < o.L < 1]
    best = min(reachable, key=score) if reachable else None
    if phi is None:
        notes.append("phi = C/(N D) unknown: amounts in units other than the law's and the "
                     "budget's are not computed (give tokens per prompt)")
    if goal == "target_loss" and not reachable:
        notes.append(f"no candidate size reaches L = {value:g} under this law")
    result = PlanResult(goal, value, fitted.law, fitted.x, phi, prompts_per_step, options, best,
                        notes=notes)
    low, high = size_range or (candidates[0], candidates[-1])
    if continuous and high > low:
        probe = math.sqrt(low * high) * 1.001
        if can_predict_unseen_size(fitted, probe):
            result.continuous = option(optimal_size(lambda N: score(option(N)), low, high))
            result.size_range = (low, high)
        else:
            notes.append(f"law {fitted.law} predicts only its fitted sizes: no continuous optimum")
    return result


def optimal_size(cost, low: float, high: float, *, vectorised: bool = False) -> float:
    """The N in [low, high] minimising cost(N): a log-spaced grid (robust to several local
    minima), then a bounded scalar minimisation between the best grid point's neighbours.
    vectorised: cost takes an array of sizes and returns an array (one call for the grid)."""
    grid = np.linspace(math.log10(low), math.log10(high), GRID_POINTS)
    if vectorised:
        values = np.asarray(cost(10.0**grid), float)
        scalar = cost
        cost = lambda N: float(np.asarray(scalar(np.array([N])), float)[0])  # noqa: E731
    else:
        values = np.array([cost(10.0**g) for g in grid])
    if not np.isfinite(values).any():
        return float(high)
    i = int(np.nanargmin(np.where(np.isfinite(values), values, np.inf)))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    refined = minimize_scalar(lambda g: cost(10.0**g), bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-9})
    best = refined.x if refined.fun <= values[i] else grid[i]
    return float(10.0**best)


def _option_budget(budget: _Budget, N, kind, value, bootstrap) -> PlanOption:
    amounts = budget.amounts(N, kind, value)
    option = PlanOption(N=N, **amounts, L=budget.loss(N, kind, value))
    if bootstrap is not None:
        lo, hi = bootstrap.band([N], [budget.x_value(N, kind, value)], kind="mean")
        option.L_lo, option.L_hi = float(lo[0]), float(hi[0])
    return option


def _option_target(budget: _Budget, N, target, bootstrap) -> PlanOption:
    x = budget.solve_x(N, target)
    if not math.isfinite(x):
        return PlanOption(N=N, C=None, D=None, T=None, steps=None, L=target)
    option = PlanOption(N=N, **budget.amounts(N, budget.fitted.x, x), L=target)
    if bootstrap is not None and option.C is not None:
        xs = [(r, budget.solve_x(N, target, r)) for r in bootstrap.replicates]
        needed = [budget.amounts(N, r.x, x)["C"] for r, x in xs if math.isfinite(x)]
        if needed:
            option.C_lo, option.C_hi = bootstrap.interval(needed)
    return option


# --- the frontier: predicted loss against budget per size -----------------------------------------

FRONTIER_KINDS = {"compute": "C", "data": "D"}  # frontier kind -> the budget's unit
FRONTIER_POINTS = 41  # budgets on the default log grid
FRONTIER_SPAN = 100.0  # the default grid reaches this factor either side of an asked budget
DATA_MARGIN = 3.0  # ... and this factor beyond the bootstrap's data (figures' dashed extension)


def budget_grid(fitted: FittedLaw, *, kind: str = "compute", sizes=None, phi: float | None = None,
                around: float | None = None, bootstrap=None, points: int = FRONTIER_POINTS,
                prompts_per_step: int = 512) -> np.ndarray:
    """A log-spaced grid of budgets (FLOPs for 'compute', prompts for 'data') covering, where
    known, FRONTIER_SPAN either side of `around` (an asked budget) and the bootstrap's data
    (DATA_MARGIN beyond it); with neither, from the least budget at which every candidate size
    predicts L below 0.99 up to 1e6 times that."""
    unit = _frontier_unit(kind)
    phi = _resolve_phi(fitted, phi, None)
    budget = _Budget(fitted, phi, prompts_per_step)
    candidates = _candidates(fitted, sizes)
    ends: list[float] = []
    if around is not None:
        if not (math.isfinite(around) and around > 0):
            raise LawError(f"the budget to centre the grid on must be a finite number > 0, got {around:g}")
        ends += [around / FRONTIER_SPAN, around * FRONTIER_SPAN]
    if bootstrap is not None and bootstrap.log_x:
        for size, log_x in bootstrap.log_x.items():
            if len(log_x):
                amounts = [budget.amounts(float(size), fitted.x, 10.0 ** float(v))[unit]
                           for v in (np.min(log_x), np.max(log_x))]
                if None not in amounts:
                    ends += [amounts[0] / DATA_MARGIN, amounts[1] * DATA_MARGIN]
    if not ends:
        starts = []
        for N in candidates:
            x = budget.solve_x(N, 0.99)
            if math.isfinite(x):
                amount = budget.amounts(N, fitted.x, x)[unit]
                if amount is not None:
                    starts.append(amount)
        if not starts:
            raise LawError(f"no candidate size predicts L below 0.99 at any {kind} budget under this "
                           "law (or phi is needed to convert): give the budgets")
        ends = [max(starts), max(starts) * 1e6]
    return np.geomspace(min(ends), max(ends), int(points))


def frontier(fitted: FittedLaw, budgets=None, *, sizes=None, phi: float | None = None, bootstrap=None,
             kind: str = "compute", tokens_per_prompt: float | None = None, prompts_per_step: int = 512,
             size_range: tuple[float, float] | None = None, continuous: bool = True,
             around: float | None = None, points: int = FRONTIER_POINTS) -> pd.DataFrame:
    """Predicted loss against budget for every candidate size, and the optimal size per budget.

    kind: 'compute' (budgets in FLOPs, paper definition 6 N T) or 'data' (budgets in prompts).
    budgets: the grid (default `budget_grid`: around the asked budget `around` and the
    bootstrap's data). One row per (budget, size), long format:

    - budget, N, C, D, steps (D / prompts_per_step; C or D NaN where phi is needed and unknown);
    - L: the law's loss, NaN where it leaves (0, 1) (the budget is outside the law's range for
      that size: marked by in_range = False and a note, never extrapolated);
    - L_lo, L_hi: with a bootstrap, the band of the law's curve ('mean' band) at its level;
    - optimal: this size has the least L among the candidates at this budget; best_N, best_L
      that size and loss (repeated on the budget's rows; NaN if no size is in range);
    - N_opt, L_opt: the continuous optimum over size_range (default the candidates' span) for
      laws that predict any size, else NaN.

    attrs: kind, unit, law, x, phi, level (None without bootstrap), size_range, notes."""
    unit = _frontier_unit(kind)
    phi = _checked_inputs(fitted, phi, tokens_per_prompt, prompts_per_step, bootstrap,
                          "frontier's")
    candidates = _candidates(fitted, sizes)
    if budgets is None:
        budgets = budget_grid(fitted, kind=kind, sizes=candidates, phi=phi, around=around,
                              bootstrap=bootstrap, points=points, prompts_per_step=prompts_per_step)
    budgets = np.unique(np.asarray(budgets, float).ravel())
    if len(budgets) == 0 or not (np.isfinite(budgets).all() and (budgets > 0).all()):
        raise LawError(f"the {kind} budgets must be finite numbers above 0 (at least one)")
    budget = _Budget(fitted, phi, prompts_per_step)
    what = "FLOPs" if unit == "C" else "prompts"

    def column(N, name, amounts):
        value = amounts[name]
        return np.full(len(budgets), np.nan) if value is None else np.broadcast_to(
            np.asarray(value, float), budgets.shape)

    frames = []
    for N in candidates:
        amounts = budget.amounts(N, unit, budgets)
        X = np.broadcast_to(np.asarray(budget.x_value(N, unit, budgets), float), budgets.shape)
        with np.errstate(all="ignore"):
            L = predict(fitted, np.full(budgets.shape, N), X)
        inside = np.isfinite(L) & (L > 0) & (L < 1)
        frame = pd.DataFrame({"budget": budgets, "N": N, "C": column(N, "C", amounts),
                              "D": column(N, "D", amounts), "steps": column(N, "steps", amounts),
                              "L": np.where(inside, L, np.nan), "L_lo": np.nan, "L_hi": np.nan,
                              "in_range": inside})
        if bootstrap is not None:
            lo, hi = bootstrap.band(np.full(budgets.shape, N), X, kind="mean")
            frame["L_lo"] = np.where(inside, lo, np.nan)
            frame["L_hi"] = np.where(inside, hi, np.nan)
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True).sort_values(["budget", "N"], ignore_index=True)
    notes = []
    if not df["in_range"].any():
        raise LawError(f"the {kind} budgets {budgets[0]:.3g}-{budgets[-1]:.3g} {what} are outside the "
                       "range the law describes: it predicts L outside (0, 1) for every candidate "
                       "size there")
    for N, group in df.groupby("N", sort=True):
        out = group.loc[~group["in_range"], "budget"]
        if len(out):
            notes.append(f"no prediction for {format_size(N)} at {len(out)} of {len(budgets)} budgets "
                         f"({unit} {out.min():.3g}-{out.max():.3g} {what}): the law gives L outside "
                         "(0, 1) there (budget outside its range)")
    best = df[df["in_range"]].loc[lambda d: d.groupby("budget")["L"].idxmin()]
    best_N = df["budget"].map(best.set_index("budget")["N"])
    df["optimal"] = df["N"].eq(best_N)
    df["best_N"] = best_N
    df["best_L"] = df["budget"].map(best.set_index("budget")["L"])
    empty = np.setdiff1d(budgets, best["budget"].to_numpy())
    if len(empty):
        notes.append(f"no candidate size has a prediction at {len(empty)} of {len(budgets)} budgets "
                     f"({unit} {empty.min():.3g}-{empty.max():.3g} {what})")
    df["N_opt"], df["L_opt"] = np.nan, np.nan
    low, high = size_range or (candidates[0], candidates[-1])
    span = None
    if continuous and high > low:
        if can_predict_unseen_size(fitted, math.sqrt(low * high) * 1.001):
            span = (float(low), float(high))
            optimum = {b: _continuous_optimum(budget, unit, b, low, high) for b in budgets}
            df["N_opt"] = df["budget"].map({b: o[0] for b, o in optimum.items()})
            df["L_opt"] = df["budget"].map({b: o[1] for b, o in optimum.items()})
            found = [(b, n) for b, (n, _) in optimum.items() if math.isfinite(n)]
            edge = [b for b, n in found if math.isclose(n, low, rel_tol=1e-3)
                    or math.isclose(n, high, rel_tol=1e-3)]
            if edge:
                notes.append(f"the continuous optimum is at an end of the size range "
                             f"[{format_size(low)}, {format_size(high)}] at {len(edge)} of {len(budgets)} "
                             "budgets: the best size may lie outside it there")
        else:
            notes.append(f"law {fitted.law} predicts only its fitted sizes: no continuous optimum")
    if phi is None:
        notes.append("phi = C/(N D) unknown: amounts in units other than the law's and the "
                     "budget's are not computed (give tokens per prompt)")
    df.attrs.update(kind=kind, unit=unit, law=fitted.law, x=fitted.x, phi=phi,
                    level=bootstrap.level if bootstrap is not None else None, size_range=span,
                    notes=notes)
    return df


def frontier_records(df: pd.DataFrame) -> list[dict]:
    """The frontier's rows as JSON-ready dicts (NaN -> None)."""
    def clean(value):
        value = value.item() if hasattr(value, "item") else value  # numpy scalars
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return [{k: clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _frontier_unit(kind: str) -> str:
    if kind not in FRONTIER_KINDS:
        raise LawError(f"frontier kind must be one of {', '.join(FRONTIER_KINDS)}, got {kind!r}")
    return FRONTIER_KINDS[kind]


def _candidates(fitted: FittedLaw, sizes) -> list[float]:
    candidates = sorted(float(s) for s in (sizes if sizes is not None else fitted.sizes))
    if not candidates:
        raise LawError("no candidate sizes: give sizes (the fit records none)")
    return candidates


def _checked_inputs(fitted, phi, tokens_per_prompt, prompts_per_step, bootstrap, whose: str):
    """The plan's and the frontier's shared checks; returns phi (`_resolve_phi`)."""
    if not (isinstance(prompts_per_step, int) and prompts_per_step >= 1):
        raise LawError(f"prompts_per_step must be an integer >= 1, got {prompts_per_step!r}")
    phi = _resolve_phi(fitted, phi, tokens_per_prompt)
    if bootstrap is not None and (bootstrap.fitted.law, bootstrap.fitted.x) != (fitted.law, fitted.x):
        raise LawError(f"the bootstrap is of {bootstrap.fitted.law} on {bootstrap.fitted.x}, the "
                       f"{whose} law is {fitted.law} on {fitted.x}")
    return phi


def _resolve_phi(fitted: FittedLaw, phi: float | None, tokens_per_prompt: float | None) -> float | None:
    if tokens_per_prompt is not None and not (math.isfinite(tokens_per_prompt)
                                              and tokens_per_prompt > 0):
        raise LawError(f"tokens_per_prompt must be a finite number > 0, got {tokens_per_prompt:g}")
    if phi is not None and not (math.isfinite(phi) and phi > 0):
        raise LawError(f"phi = C/(N D) must be a finite number > 0, got {phi:g}")
    if tokens_per_prompt is not None:
        phi = float(FLOPS_PER_PARAM_TOKEN * tokens_per_prompt)  # C/(N D) = 6 T/D
    return phi if phi is not None else fitted.metrics.get("phi")


def _continuous_optimum(budget: _Budget, unit: str, value: float, low: float, high: float
                        ) -> tuple[float, float]:
    """(N, L) minimising L over sizes in [low, high] at a budget; (nan, nan) if L never lies
    in (0, 1) there."""

    def cost(N):
        N = np.asarray(N, float)
        X = budget.x_value(N, unit, np.full(N.shape, value))
        with np.errstate(all="ignore"):
            L = predict(budget.fitted, N, X)
        return np.where(np.isfinite(L) & (L > 0) & (L < 1), L, np.inf)

    N = optimal_size(cost, low, high, vectorised=True)
    L = float(cost(np.array([N]))[0])
    return (N, L) if math.isfinite(L) else (math.nan, math.nan)


# --- from files (what `rlscale plan` runs) -------------------------------------------------------

def plan_from_files(fit_json, goal: str, value: float, *, sizes=None, size_range=None,
                    tokens_per_prompt: float | None = None, data=None, bootstrap_n: int = 0,
                    seed: int = 0, prompts_per_step: int = 512, with_frontier: bool = False,
                    budget_range=None, progress: bool = False) -> PlanResult:
    """`plan` on a fitted-law JSON (`rlscale fit -o`) or a bootstrap JSON (its replicates give
    the bands). data: a run table/CSV/root: estimates phi = C/(N D) (pooled over sizes, unless
    tokens_per_prompt is given) and, with bootstrap_n > 0, the refits for bands.
    with_frontier (or budget_range = (LOW, HIGH)): also the frontier (`frontier`) in the
    result, in FLOPs ('data' goals: prompts; a D-law without phi: prompts too), on a grid around
    the asked budget (or the target's cheapest compute) and the bootstrap's data."""
    import json
    from pathlib import Path

    from rlscale.laws.base import load_law_table, pooled_phi
    from rlscale.laws.bootstrap import BootstrapResult, bootstrap

    try:
        content = json.loads(Path(fit_json).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LawError(f"{fit_json}: not a readable fitted-law JSON ({err})") from None
    boot = BootstrapResult.from_dict(content) if "replicates" in content else None
    fitted = boot.fitted if boot else FittedLaw.from_dict(content)
    phi = None
    if data is not None:
        table = load_law_table(data)
        if tokens_per_prompt is None:
            phi = pooled_phi(table)  # one phi for all sizes (None without both C and D)
        if bootstrap_n:
            boot = bootstrap(table, fitted.estimator(), fitted.x, n=bootstrap_n, seed=seed,
                             progress=progress)
    elif bootstrap_n:
        raise LawError("--bootstrap needs --data (the runs to resample)")
    span = tuple(size_range) if size_range else None
    result = plan(fitted, goal, value, sizes=sizes, phi=phi, tokens_per_prompt=tokens_per_prompt,
                  prompts_per_step=prompts_per_step, bootstrap=boot, size_range=span)
    if with_frontier or budget_range is not None:
        kind = "data" if goal == "data" or (result.phi is None and fitted.x == "D") else "compute"
        around = value if goal != "target_loss" else None
        if around is None and result.best is not None:
            around = result.best.C if kind == "compute" else result.best.D
        budgets = None
        if budget_range is not None:
            low, high = (float(b) for b in budget_range)
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
                raise LawError(f"the budget range must be LOW,HIGH with 0 < LOW < HIGH, got "
                               f"{low:g},{high:g}")
            budgets = np.geomspace(low, high, FRONTIER_POINTS)
        result.frontier = frontier(fitted, budgets, sizes=sizes, phi=result.phi, bootstrap=boot,
                                   kind=kind, prompts_per_step=prompts_per_step, size_range=span,
                                   around=around)
    return result


# --- data reuse ----------------------------------------------------------------------------------

@dataclass
class ReuseAdvice:
    """Per tau: final loss (mean over the final window), its spread, the gap to tau = baseline and
    the one-sided Welch t-test p-value of 'worse than baseline'; the recommended tau."""

    per_tau: pd.DataFrame  # tau, final_L, std, n, gap, p_value, worse
    recommended_tau: float
    window: tuple[float, float]
    alpha: float
    baseline: float
    test: str

    def to_dict(self) -> dict:
        return {"recommended_tau": self.recommended_tau, "window": list(self.window),
                "alpha": self.alpha, "baseline": self.baseline, "test": self.test,
                "per_tau": self.per_tau.to_dict(orient="records")}


def load_tau_table(path) -> pd.DataFrame:
    """A tau experiment as rows (tau, run, step, L): a CSV, or a run root whose runs' meta has tau."""
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        from rlscale.runs import RunTable

        runs = RunTable.load(path)
        table = runs.law_table()
        tau = runs.df.drop_duplicates("run").set_index("run")["tau"]
        return table.assign(tau=table["run"].map(tau))
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the tau table ({err})", path=path) from None


def reuse_advice(table: pd.DataFrame, *, final_fraction: float = 0.1, alpha: float = 0.05,
                 baseline: float = 1.0) -> ReuseAdvice:
    """How much data reuse costs, from a tau experiment (columns tau, step, L; optional run):
    final loss = mean L over the last `final_fraction` of steps (step >= (1 - f) x last step).
    Test: one-sided Welch t-test that tau's final loss exceeds the baseline's, at `alpha`; the
    samples are the runs' final losses where both have >= 2 runs, else the window's points (evals
    at neighbouring steps are correlated, so then the test is approximate). Recommended: the
    largest tau such that it and every smaller tau are not significantly worse."""
    missing = [c for c in ("tau", "step", "L") if c not in table.columns]
    if missing:
        raise DataError(f"reuse table lacks column(s) {', '.join(missing)}", field=missing[0])
    if table[["tau", "step", "L"]].isna().any().any():
        row = int(np.flatnonzero(table[["tau", "step", "L"]].isna().any(axis=1).to_numpy())[0])
        raise DataError("tau, step or L is missing", row=row)
    if not 0 < final_fraction <= 1:
        raise LawError(f"final_fraction must be in (0, 1], got {final_fraction}")
    start = (1.0 - final_fraction) * float(table["step"].max())
    final = table[table["step"] >= start]
    if not np.isclose(final["tau"], baseline).any():
        raise DataError(f"no runs with tau = {baseline:g} (the baseline) in the final window", field="tau")
    by_run = "run" in final.columns and bool((final.groupby("tau")["run"].nunique() >= 2).all())
    samples = {float(t): (g.groupby("run")["L"].mean() if by_run else g["L"]).to_numpy(float)
               for t, g in final.groupby("tau")}
    base = samples[float(baseline)]
    rows = []
    for tau, values in sorted(samples.items()):
        if len(values) < 2 or len(base) < 2:
            raise DataError(f"tau = {tau:g}: fewer than 2 final values to test", field="L")
        p = 1.0 if tau == baseline else float(ttest_ind(values, base, equal_var=False,
                                                          alternative="greater").pvalue)
        rows.append({"tau": tau, "final_L": float(np.mean(values)), "std": float(np.std(values, ddof=1)),
                     "n": len(values), "gap": float(np.mean(values) - np.mean(base)), "p_value": p,
                     "worse": p < alpha})
    per_tau = pd.DataFrame(rows)
    recommended = baseline
    for row in per_tau.itertuples():
        if row.tau >= baseline:
            if row.worse:
                break
            recommended = row.tau
    runs = "runs' final losses" if by_run else "final-window points"
    test = (f"one-sided Welch t-test of final L (steps >= {start:g}) vs tau = {baseline:g}, "
            f"alpha = {alpha:g}, samples: {runs}")
    return ReuseAdvice(per_tau, float(recommended), (start, float(table["step"].max())), alpha,
                       baseline, test)
