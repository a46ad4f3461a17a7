"""Planning with a fitted law: which model size for a compute budget, a data budget or a target
loss, and how much to reuse data when unique data are scarce.

Budgets convert through C = N D phi (phi = C / (N D) = 6 x tokens per prompt, counting the prompt
and all its rollouts) and T = C / (6 N); steps = D / prompts_per_step. phi is needed whenever the
law's X differs from the budget's; give it (or tokens per prompt), or estimate it from a run table
(`rlscale.laws.consistency.estimate_phi`).

For each candidate size the predicted loss (with a bootstrap band if a BootstrapResult is given);
on a continuous range of sizes (laws that predict any N, e.g. a parametric E(N)) the optimum by a
log-spaced grid refined with a bounded scalar minimisation.
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

    def to_dict(self) -> dict:
        return {"goal": self.goal, "value": self.value, "law": self.law, "x": self.x,
                "phi": self.phi, "prompts_per_step": self.prompts_per_step,
                "options": [asdict(o) for o in self.options],
                "best": asdict(self.best) if self.best else None,
                "continuous": asdict(self.continuous) if self.continuous else None,
                "size_range": list(self.size_range) if self.size_range else None,
                "notes": self.notes}


class _Budget:
    """Converts between C, D and T for a size with phi, and evaluates the law on a budget."""

    def __init__(self, fitted: FittedLaw, phi: float | None, prompts_per_step: int):
        self.fitted, self.phi, self.prompts_per_step = fitted, phi, prompts_per_step

    def amounts(self, N: float, kind: str, value: float) -> dict[str, float | None]:
        """C, D, T and steps for `value` of `kind` (C, D or T) at size N (None where phi is needed
        and unknown)."""
        C = {"C": value, "T": 6.0 * N * value}.get(kind)
        if kind == "D":
            C = N * value * self.phi if self.phi else None
        D = value if kind == "D" else (C / (N * self.phi) if C is not None and self.phi else None)
        T = C / (6.0 * N) if C is not None else None
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
    if not (isinstance(prompts_per_step, int) and prompts_per_step >= 1):
        raise LawError(f"prompts_per_step must be an integer >= 1, got {prompts_per_step!r}")
    if tokens_per_prompt is not None and not (math.isfinite(tokens_per_prompt)
                                              and tokens_per_prompt > 0):
        raise LawError(f"tokens_per_prompt must be a finite number > 0, got {tokens_per_prompt:g}")
    if phi is not None and not (math.isfinite(phi) and phi > 0):
        raise LawError(f"phi = C/(N D) must be a finite number > 0, got {phi:g}")
    if bootstrap is not None and (bootstrap.fitted.law, bootstrap.fitted.x) != (fitted.law, fitted.x):
        raise LawError(f"the bootstrap is of {bootstrap.fitted.law} on {bootstrap.fitted.x}, the plan's "
                       f"law is {fitted.law} on {fitted.x}")
    if tokens_per_prompt is not None:
        phi = 6.0 * tokens_per_prompt
    phi = phi if phi is not None else fitted.metrics.get("phi")
    budget = _Budget(fitted, phi, prompts_per_step)
    candidates = sorted(float(s) for s in (sizes if sizes is not None else fitted.sizes))
    if not candidates:
        raise LawError("no candidate sizes: give sizes (the fit records none)")
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


def optimal_size(cost, low: float, high: float) -> float:
    """The N in [low, high] minimising cost(N): a log-spaced grid (robust to several local
    minima), then a bounded scalar minimisation between the best grid point's neighbours."""
    grid = np.linspace(math.log10(low), math.log10(high), GRID_POINTS)
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
