"""The other law forms, fitted by bounded least squares from a fixed grid of starts.

decomposition (the paper's appendix D):
    L = L_inf + (N0/N)^alpha + lambda(N) / (1 + (X / X0(N))^beta)
    lambda(N) = lam * (N/N_ref)^gamma,  X0(N) = X0 * (N/N_ref)^delta
    Power laws in N for the size-dependent amplitude and midpoint: the simplest forms that let
    both vary monotonically over orders of magnitude of N; N_ref (geometric mean of the fitted
    sizes, not fitted) keeps lam and X0 near the data for conditioning.
sigmoid (ScaleRL, per size): L = 1 - [R0 + (A - R0) / (1 + (Xmid/X)^B)]
additive: L = E + (A/N)^alpha + (B/X)^beta

Scale parameters (N0, X0, Xmid, A, B) are searched in log10; powers are evaluated as
10^(p * (log a - log b)) to stay finite across the 10^6..10^20 range of N and X.
"""

from __future__ import annotations

import itertools

import numpy as np

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

        theta, cost = solve_multistart(residuals, starts, bounds)
        if self.loss == "huber":
            f_scale = huber_scale(residuals(theta))
            theta, cost = solve_multistart(residuals, [theta], bounds, loss="huber", f_scale=f_scale)
        return self._result(points, self._to_params(theta, extra), objective=2.0 * cost / len(points),
                            bounds_hit=bounds.on_bound(theta))


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


@register
class Sigmoid(Law):
    """ScaleRL's sigmoid in X, fitted per size: L = 1 - [R0 + (A - R0) / (1 + (Xmid/X)^B)]."""

    name = "sigmoid"
    min_sizes = 1
    min_points_per_size = 5
    per_size = True
    names = ("R0", "A", "Xmid", "B")

    def curve(self, params, N, X):
        get = {n: per_size_value(params[n], N, n, self.name) for n in self.names}
        rate = get["R0"] + (get["A"] - get["R0"]) / (1.0 + _pow(np.log10(get["Xmid"]) - np.log10(X), get["B"]))
        return 1.0 - rate

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
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
            theta, cost = solve_multistart(residuals, starts, bounds)
            if self.loss == "huber":
                f_scale = huber_scale(residuals(theta))
                theta, cost = solve_multistart(residuals, [theta], bounds, loss="huber", f_scale=f_scale)
            for name, value in zip(self.names, theta, strict=True):
                params[name][float(size)] = float(10.0**value if name == "Xmid" else value)
            total_cost += cost
            bounds_hit += [f"{name}[{format_size(size)}]" for name in bounds.on_bound(theta)]
        return self._result(points, params, objective=2.0 * total_cost / len(points),
                            bounds_hit=bounds_hit)
