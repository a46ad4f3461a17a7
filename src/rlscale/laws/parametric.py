"""The other law forms, fitted by bounded least squares from a fixed grid of starts.

decomposition (the paper's appendix D):
    L = L_inf + (N0/N)^alpha + lambda(N) / (1 + (X / X0(N))^beta)
    lambda(N) = lam * (N/N_ref)^gamma,  X0(N) = X0 * (N/N_ref)^delta
    Power laws in N for the size-dependent amplitude and midpoint: the simplest forms that let
    both vary monotonically over orders of magnitude of N; N_ref (geometric mean of the fitted
    sizes, not fitted) keeps lam and X0 near the data for conditioning.
sigmoid (ScaleRL, per size): L = 1 - [R0 + (A - R0) / (1 + (Xmid/X)^B)], fitted after
    ScaleRL's initial-compute cut (`cut`, see Sigmoid)
power_floor (per size): L = E_N + (B_N / X)^beta_N, a power law with an irreducible term
additive: L = E + (A/N)^alpha + (B/X)^beta

Scale parameters (N0, X0, Xmid, A, B) are searched in log10; powers are evaluated as
10^(p * (log a - log b)) to stay finite across the 10^6..10^20 range of N and X.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np

from rlscale.errors import LawError
from rlscale.laws.base import (
    Bounds,
    FittedLaw,
    Law,
    Points,
    format_size,
    huber_scale,
    per_size_value,
    register,
    solve_multistart,
)


class _JointLaw(Law):
    """A law with one parameter vector shared by all sizes. Subclasses define `names`,
    `curve`, `_bounds(points) -> Bounds` and `_starts(points) -> list of theta`."""

    names: tuple[str, ...] = ()
    log_params: frozenset[str] = frozenset()  # searched in log10

    def _extra_params(self, points: Points) -> dict:
        return {}

    def _to_params(self, theta, extra) -> dict:
        params = {name: float(10.0**v if name in self.log_params else v)
                  for name, v in zip(self.names, theta, strict=True)}
        return {**params, **extra}

    def _to_theta(self, params) -> list[float]:
        return [float(np.log10(params[n]) if n in self.log_params else params[n]) for n in self.names]

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        bounds, extra = self._bounds(points), self._extra_params(points)
        starts = [self._to_theta(init.params)] if init is not None and init.law == self.name \
            else self._starts(points)
        sqrt_w = np.sqrt(points.weight)

        def residuals(theta):
            return sqrt_w * self.residuals(self.curve(self._to_params(theta, extra), points.N, points.X),
                                           points.L)

        theta, cost = _solve(self, residuals, starts, bounds)
        return self._result(points, self._to_params(theta, extra), objective=2.0 * cost / len(points),
                            bounds_hit=bounds.on_bound(theta))


def _solve(law: Law, residuals, starts, bounds: Bounds):
    """Bounded least squares from `starts`; with loss='huber', polished under Huber's loss with
    the threshold set from the least-squares residuals."""
    theta, cost = solve_multistart(residuals, starts, bounds)
    if law.loss == "huber":
        f_scale = huber_scale(residuals(theta))
        theta, cost = solve_multistart(residuals, [theta], bounds, loss="huber", f_scale=f_scale)
    return theta, cost


def _pow(log_base: np.ndarray, exponent) -> np.ndarray:
    """10^(exponent * log_base), overflow-safe."""
    return 10.0 ** np.clip(exponent * log_base, -300.0, 300.0)


@register
class Additive(_JointLaw):
    """L = E + (A/N)^alpha + (B/X)^beta."""

    name = "additive"
    min_sizes = 2
    min_points_per_size = 2
    names = ("E", "A", "alpha", "B", "beta")
    log_params = frozenset({"A", "B"})

    def curve(self, params, N, X):
        return (params["E"] + _pow(np.log10(params["A"]) - np.log10(N), params["alpha"])
                + _pow(np.log10(params["B"]) - np.log10(X), params["beta"]))

    def _bounds(self, points):
        ln, lx = np.log10(points.sizes), np.log10(points.X)
        return Bounds(self.names, np.array([0.0, ln[0] - 6, 0.01, lx.min() - 10, 0.005]),
                      np.array([1.0, ln[-1] + 3, 3.0, lx.max() + 3, 3.0]))

    def _starts(self, points):
        ln, lx = np.log10(points.sizes), np.log10(points.X)
        e0 = 0.5 * float(points.L.min())
        return [[e, ln[0] - 1, a, lx.min() - 2, b]
                for e, a, b in itertools.product((0.0, e0), (0.1, 0.5), (0.05, 0.3))]


@register
class Decomposition(_JointLaw):
    """L = L_inf + (N0/N)^alpha + lam (N/N_ref)^gamma / (1 + (X / (X0 (N/N_ref)^delta))^beta)."""

    name = "decomposition"
    min_sizes = 3
    min_points_per_size = 3
    names = ("L_inf", "N0", "alpha", "lam", "gamma", "X0", "delta", "beta")
    log_params = frozenset({"N0", "X0"})

    def _extra_params(self, points):
        return {"N_ref": float(10.0 ** np.mean(np.log10(points.sizes)))}

    def lam(self, params, N):
        return params["lam"] * (np.asarray(N, dtype=float) / params["N_ref"]) ** params["gamma"]

    def X0(self, params, N):
        return params["X0"] * (np.asarray(N, dtype=float) / params["N_ref"]) ** params["delta"]

    def curve(self, params, N, X):
        log_x0 = np.log10(self.X0(params, N))
        return (params["L_inf"] + _pow(np.log10(params["N0"]) - np.log10(N), params["alpha"])
                + self.lam(params, N) / (1.0 + _pow(np.log10(X) - log_x0, params["beta"])))

    def _bounds(self, points):
        ln, lx = np.log10(points.sizes), np.log10(points.X)
        return Bounds(self.names,
                      np.array([0.0, ln[0] - 6, 0.01, 0.0, -3.0, lx.min() - 4, -3.0, 0.05]),
                      np.array([1.0, ln[-1] + 3, 3.0, 1.0, 3.0, lx.max() + 4, 3.0, 5.0]))

    def _starts(self, points):
        ln, lx = np.log10(points.sizes), np.log10(points.X)
        span = float(np.ptp(points.L)) or 0.1
        return [[l_inf, ln[0] - 1, 0.3, span, -0.5, x0, 0.0, beta]
                for l_inf, x0, beta in itertools.product(
                    (0.0, 0.5 * float(points.L.min())), (float(np.median(lx)), lx.max() + 1), (0.5, 1.5))]


# ScaleRL's cut: the 8B run of Khatri et al. 2025 (arXiv 2510.13786, Fig. 1) is fitted on
# 1.5k-50k GPU-hours, so the points below 1.5k / 50k = 3% of the largest fitted compute are left out.
SCALERL_CUT = 1.5e3 / 50e3


@register
class Sigmoid(Law):
    """ScaleRL's sigmoid in X, fitted per size: L = 1 - [R0 + (A - R0) / (1 + (Xmid/X)^B)].

    cut: each size's points with X < cut x (its largest fitted X) are not fitted (they are still
    predicted, e.g. as held-out points). ScaleRL (Khatri et al. 2025, "The Art of Scaling
    Reinforcement Learning Compute for LLMs", arXiv 2510.13786, section 2.1 and appendix) fits
    its sigmoid only after the early, noisy low-compute regime: it excludes roughly the first
    1.5k GPU-hours of each run; its showcase fit, the 8B run of 100k GPU-hours (Fig. 1), is on
    1.5k-50k GPU-hours. The cut is a threshold on linear compute, and within one run
    GPU-hours, C and D all grow in proportion to the step, so the faithful scale-free
    translation is a fraction of the fitted compute (not of its log range, which would depend
    on where logging started):
    1.5k / 50k = 0.03, the default (`SCALERL_CUT`). Their other fits put the same 1.5k at 9% of
    a 16k-GPU-hour fit window (the MoE run) and 19% of an 8k one (the leave-one-out ablations,
    fitted on 8k of 16k); cut=0 fits every point.
    """

    name = "sigmoid"
    min_sizes = 1
    min_points_per_size = 5
    per_size = True
    names = ("R0", "A", "Xmid", "B")

    def __init__(self, *, space: str = "linear", loss: str = "linear", cut: float = SCALERL_CUT):
        super().__init__(space=space, loss=loss)
        self.cut = cut

    def _check_options(self) -> None:
        super()._check_options()
        if isinstance(self.cut, bool) or not isinstance(self.cut, int | float) or not (
                math.isfinite(self.cut) and 0 <= self.cut < 1):
            raise LawError(f"sigmoid: cut must be a number in [0, 1) (the fraction of each size's "
                           f"largest compute below which points are not fitted; ScaleRL's is "
                           f"{SCALERL_CUT:g}), got {self.cut!r}")

    def cut_points(self, points: Points) -> Points:
        """The points the sigmoid is fitted on: per size, those with X >= cut x its largest X."""
        index, x = points.size_index, points.X
        x_max = np.array([x[index == i].max() for i in range(len(points.sizes))])
        kept = points.subset(x >= self.cut * x_max[index])  # cut < 1: every size stays
        counts = np.bincount(kept.size_index, minlength=len(points.sizes))
        for size, n, top in zip(points.sizes, counts, x_max, strict=True):
            if n < self.min_points_per_size:
                raise LawError(f"sigmoid: size N={format_size(size)} ({size:g}) keeps {n} points "
                               f"after the initial-compute cut (X >= {self.cut:g} x {top:g}); it "
                               f"needs at least {self.min_points_per_size} (lower cut)")
        return kept

    def curve(self, params, N, X):
        get = {n: per_size_value(params[n], N, n, self.name) for n in self.names}
        rate = get["R0"] + (get["A"] - get["R0"]) / (1.0 + _pow(np.log10(get["Xmid"]) - np.log10(X), get["B"]))
        return 1.0 - rate

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        n_given = len(points)
        points = self.cut_points(points)
        params = {n: {} for n in self.names}
        total_cost, bounds_hit = 0.0, []
        index = points.size_index
        for i, size in enumerate(points.sizes):
            mask = index == i
            L, lx, sqrt_w = points.L[mask], np.log10(points.X[mask]), np.sqrt(points.weight[mask])
            bounds = Bounds(self.names, np.array([0.0, 0.0, lx.min() - 3, 0.05]),
                            np.array([1.0, 1.0, lx.max() + 3, 10.0]))

            def residuals(theta, L=L, lx=lx, sqrt_w=sqrt_w):
                rate = theta[0] + (theta[1] - theta[0]) / (1.0 + _pow(theta[2] - lx, theta[3]))
                return sqrt_w * self.residuals(1.0 - rate, L)

            if init is not None and init.law == self.name and float(size) in init.params["A"]:
                p = {n: init.params[n][float(size)] for n in self.names}
                starts = [[p["R0"], p["A"], np.log10(p["Xmid"]), p["B"]]]
            else:
                r_first, r_last = 1.0 - L[0], 1.0 - L[-1]
                starts = [[r_first, min(1.0, r_last + gain), xmid, b]
                          for gain, xmid, b in itertools.product((0.05, 0.3), (np.median(lx), lx.max() + 1),
                                                                  (0.5, 1.5))]
            theta, cost = _solve(self, residuals, starts, bounds)
            for name, value in zip(self.names, theta, strict=True):
                params[name][float(size)] = float(10.0**value if name == "Xmid" else value)
            total_cost += cost
            bounds_hit += [f"{name}[{format_size(size)}]" for name in bounds.on_bound(theta)]
        # In-sample metrics are over the fitted points; n_cut says how many were left out.
        fitted = self._result(points, params, objective=2.0 * total_cost / len(points),
                              bounds_hit=bounds_hit)
        return replace(fitted, metrics={**fitted.metrics, "n_cut": n_given - len(points)})


@register
class PowerFloor(Law):
    """A power law with an irreducible term, fitted per size: L = E_N + (B_N / X)^beta_N.

    Each size is fitted on its own (like sigmoid): bounded least squares from 3 starts, one per
    floor E in {0, 0.5, 0.9} x min L, with beta and a from the log-log line through L - E. E is
    bounded to [0, min L of the size] (a floor cannot sit above the observed loss), beta to
    [0.01, 5]. The search runs in (E, log10 a, beta) with a = (B / X_ref)^beta the amplitude at
    X_ref, the geometric mean of the size's X, log10 a in [-3, 1]: B and beta are nearly
    collinear, a and beta much less, and these bounds keep log10 B = log10 X_ref + log10(a) / beta
    within float range (above 10^-300 for X_ref >= 1). B is reported.
    """

    name = "power_floor"
    min_sizes = 1
    min_points_per_size = 4
    per_size = True
    names = ("E", "B", "beta")

    def curve(self, params, N, X):
        get = {n: per_size_value(params[n], N, n, self.name) for n in self.names}
        return get["E"] + _pow(np.log10(get["B"]) - np.log10(X), get["beta"])

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        params = {n: {} for n in self.names}
        total_cost, bounds_hit = 0.0, []
        index = points.size_index
        for i, size in enumerate(points.sizes):
            mask = index == i
            L, lx, sqrt_w = points.L[mask], np.log10(points.X[mask]), np.sqrt(points.weight[mask])
            l_ref, l_min = float(lx.mean()), float(L.min())
            bounds = Bounds(("E", "log10_a", "beta"), np.array([0.0, -3.0, 0.01]),
                            np.array([l_min, 1.0, 5.0]))

            def residuals(theta, L=L, lx=lx, sqrt_w=sqrt_w, l_ref=l_ref):
                return sqrt_w * self.residuals(theta[0] + _pow(l_ref - lx, theta[2]) * 10.0 ** theta[1], L)

            if init is not None and init.law == self.name and float(size) in init.params["E"]:
                p = {n: init.params[n][float(size)] for n in self.names}
                starts = [[p["E"], p["beta"] * (np.log10(p["B"]) - l_ref), p["beta"]]]
            else:  # for each floor E, the log-log line through L - E gives beta and a
                starts = []
                for e in (0.0, 0.5 * l_min, 0.9 * l_min):
                    slope, log_a = np.polyfit(lx - l_ref, np.log10(L - e), 1)
                    starts.append(bounds.clip(np.array([e, log_a, -slope])))
            theta, cost = _solve(self, residuals, starts, bounds)
            E, log_a, beta = (float(v) for v in theta)
            params["E"][float(size)] = E
            params["B"][float(size)] = float(10.0 ** (l_ref + log_a / beta))
            params["beta"][float(size)] = beta
            total_cost += cost
            bounds_hit += [f"{name}[{format_size(size)}]" for name in bounds.on_bound(theta)]
        return self._result(points, params, objective=2.0 * total_cost / len(points),
                            bounds_hit=bounds_hit)
