"""The paper's law and its free per-size baseline.

loglinear_kn:  log10 L = -k(N) log10 X + E(N),   k(N) = Kmax / (1 + N0 / N)
loglinear:     log10 L = -k_N log10 X + E_N       (k and E free per size)

E(N) of loglinear_kn ("e_form"): free per size (the paper's fit), saturating
E(N) = Emax N / (N + N1) (the authors' code), or "joint": the C-law tied to a saturating D-law
by C = N D phi (the paper's appendix C.2), E_C(N) = Emax N / (N + N1) + k(N) log10(N phi), with
phi = C / (N D) measured on the data. The C-law's own intercept grows steeply with N (it carries
k(N) log10(N phi)); the D-law's is nearly flat, so a C-forecast for an unseen size extrapolates
far better through it. Fitting the joint C-law on C points is fitting the saturating D-law on
the points D' = C / (N phi), which differ from the runs' D only by how phi drifts within a run.
phi is one number for every size, or per size ({N: phi}): each fitted size then converts with its
own tokens per prompt and a size without one (an unseen size) with their geometric mean.

Fitting uses variable projection: given the slopes, each size's intercept has a closed form, so
the nonlinear search is over (Kmax, log10 N0) only (2-D, from a fixed 3x3 grid of starts):
- log space:    E_N = weighted mean over the size's points of (log10 L + k log10 X);
- linear space: L = a_N * X^-k with a_N = 10^E_N is linear in a_N, so
                a_N = sum(w g L) / sum(w g^2),  g = X^-k   (exact least squares, no 1-D search);
- Huber loss:   the same formulas inside iteratively reweighted least squares (30 rounds at most).
"""

from __future__ import annotations

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
    is_positive_number,
    per_size_value,
    register,
    solve_multistart,
)

E_FORMS = ("free", "saturating", "joint")


def _huber_weights(scaled: np.ndarray) -> np.ndarray:
    magnitude = np.abs(scaled)
    return np.where(magnitude <= 1.0, 1.0, 1.0 / np.maximum(magnitude, 1e-300))


def solve_intercepts(k_point: np.ndarray, points: Points, space: str, *, f_scale: float | None = None,
                     ) -> np.ndarray:
    """Best intercept E of each size (in points.sizes order) for given per-point slopes.

    Least squares when f_scale is None, else Huber with threshold f_scale on sqrt(w) * residual.
    """
    index, lx, L, w = points.size_index, np.log10(points.X), points.L, points.weight
    n_sizes = len(points.sizes)
    if space == "linear":
        # Centre log10 X per size so that g = X^-k is of order 1 whatever the units of X;
        # E is shifted back by k * centre at the end.
        count = np.bincount(index, minlength=n_sizes)
        centre = np.bincount(index, lx, n_sizes) / count
        k_size = np.bincount(index, k_point, n_sizes) / count  # k is constant within a size
        g = 10.0 ** (-k_point * (lx - centre[index]))
    else:
        y = np.log10(L) + k_point * lx
    weights = w
    for _ in range(1 if f_scale is None else 30):
        if space == "log":
            E = np.bincount(index, weights * y, n_sizes) / np.bincount(index, weights, n_sizes)
            residual = E[index] - y
        else:
            a = np.bincount(index, weights * g * L, n_sizes) / np.bincount(index, weights * g * g, n_sizes)
            E = np.log10(a) + k_size * centre
            residual = a[index] * g - L
        if f_scale is None:
            break
        new_weights = w * _huber_weights(np.sqrt(w) * residual / f_scale)
        if np.allclose(new_weights, weights, rtol=1e-12, atol=0):
            break
        weights = new_weights
    return E


def _slopes_per_size(points: Points) -> np.ndarray:
    """Ordinary least-squares log-log slope of each size (for starting points)."""
    index, n = points.size_index, len(points.sizes)
    lx, ly = np.log10(points.X), np.log10(points.L)
    count = np.bincount(index, minlength=n)
    mx, my = np.bincount(index, lx, n) / count, np.bincount(index, ly, n) / count
    dx, dy = lx - mx[index], ly - my[index]
    return -np.bincount(index, dx * dy, n) / np.maximum(np.bincount(index, dx * dx, n), 1e-300)


@register
class LogLinearKN(Law):
    """The paper's law. e_form='free' (the paper): one intercept per fitted size; 'saturating':
    E(N) = Emax N / (N + N1) (the form in the authors' code), so any size can be predicted;
    'joint' (C-law only, needs `phi`): the saturating D-law's intercept carried to C (module doc)."""

    name = "loglinear_kn"
    param_ranges = {"Kmax": (0.0, math.inf), "N0": (1e-300, math.inf), "N1": (1e-300, math.inf)}
    min_sizes = 3
    min_points_per_size = 2

    def __init__(self, *, space: str = "linear", loss: str = "linear", e_form: str = "free",
                 phi: float | dict[float, float] | None = None):
        super().__init__(space=space, loss=loss)
        self.e_form = e_form
        # per-size phi read back from JSON has string keys: sizes are numbers here
        self.phi = _numeric_mapping(phi) if isinstance(phi, dict) else phi

    def _check_options(self) -> None:
        super()._check_options()
        if self.e_form not in E_FORMS:
            raise LawError(f"e_form must be one of {E_FORMS}, got {self.e_form!r}")
        if self.e_form == "joint":
            values = list(self.phi.values()) if isinstance(self.phi, dict) and self.phi else [self.phi]
            if not all(is_positive_number(v) for v in values):
                raise LawError(f"e_form='joint' needs phi = C/(N D), a finite number > 0 or a "
                               f"mapping size -> such a number, got {self.phi!r}")
        elif self.phi is not None:
            raise LawError("phi applies only to e_form='joint'")

    def _check_x(self, x: str) -> None:
        if self.e_form == "joint" and x != "C":
            raise LawError(f"e_form='joint' is the C-law tied to the D-law; fit it on x='C', not "
                           f"{x!r} (the D-law itself is e_form='saturating')")

    def _log_n_phi(self, N):
        """log10(N phi) for the joint form, else 0: E_C - E_D = k(N) times this."""
        if self.e_form != "joint":
            return 0.0
        N = np.asarray(N, dtype=float)
        if not isinstance(self.phi, dict):
            return np.log10(N * self.phi)
        sizes = np.array(sorted(self.phi))
        log_phi = np.log10([self.phi[s] for s in sizes])
        flat = N.ravel()
        nearest = np.abs(np.log10(flat)[:, None] - np.log10(sizes)[None, :]).argmin(axis=1)
        own = np.isclose(sizes[nearest], flat, rtol=1e-6, atol=0)
        per_point = np.where(own, log_phi[nearest], log_phi.mean())  # unseen: the geometric mean
        return np.log10(N) + per_point.reshape(N.shape)

    def _intercept_shift(self, params, N):
        return self.k(params, N) * self._log_n_phi(N)

    # --- the curve
    def k(self, params, N):
        return params["Kmax"] / (1.0 + params["N0"] / np.asarray(N, dtype=float))

    def E(self, params, N):
        N = np.asarray(N, dtype=float)
        if "E" in params:
            return per_size_value(params["E"], N, "intercept E", self.name)
        return params["Emax"] * N / (N + params["N1"]) + self._intercept_shift(params, N)

    def curve(self, params, N, X):
        return 10.0 ** (self.E(params, N) - self.k(params, N) * np.log10(X))

    # --- fitting
    def _bounds(self, points: Points) -> Bounds:
        lo, hi = np.log10(points.sizes[0]), np.log10(points.sizes[-1])
        return Bounds(("Kmax", "N0"), np.array([0.0, lo - 3.0]), np.array([5.0, hi + 3.0]))

    def _starts(self, points: Points, bounds: Bounds, init: FittedLaw | None):
        if init is not None and init.law == self.name:
            return [[init.params["Kmax"], np.log10(init.params["N0"])]]
        top = max(float(np.max(_slopes_per_size(points))), 1e-3)
        lo, hi = np.log10(points.sizes[0]), np.log10(points.sizes[-1])
        return [[top * m, n0] for m in (1.2, 2.0, 4.0) for n0 in (lo, 0.5 * (lo + hi), hi + 0.5)]

    def _free_residuals(self, points: Points, f_scale: float | None):
        lx, index, sqrt_w = np.log10(points.X), points.size_index, np.sqrt(points.weight)
        log_N = np.log10(points.N)

        def residuals(theta):
            k_point = theta[0] / (1.0 + 10.0 ** (theta[1] - log_N))
            E = solve_intercepts(k_point, points, self.space, f_scale=f_scale)
            predicted = 10.0 ** (E[index] - k_point * lx)
            return sqrt_w * self.residuals(predicted, points.L)

        return residuals

    def _fit_free(self, points: Points, init: FittedLaw | None):
        bounds = self._bounds(points)
        theta, cost = solve_multistart(self._free_residuals(points, None),
                                       self._starts(points, bounds, init), bounds)
        f_scale = None
        if self.loss == "huber":
            f_scale = huber_scale(self._free_residuals(points, None)(theta))
            theta, cost = solve_multistart(self._free_residuals(points, f_scale), [theta], bounds,
                                           loss="huber", f_scale=f_scale)
        k_point = theta[0] / (1.0 + 10.0 ** (theta[1] - np.log10(points.N)))
        E = solve_intercepts(k_point, points, self.space, f_scale=f_scale)
        params = {"Kmax": float(theta[0]), "N0": float(10.0 ** theta[1]),
                  "E": {float(s): float(e) for s, e in zip(points.sizes, E, strict=True)}}
        return params, 2.0 * cost / len(points), bounds.on_bound(theta)

    def _fit_saturating(self, points: Points, init: FittedLaw | None):
        # Start from the free-intercept fit, then E(N) = Emax N/(N+N1) matched to its intercepts
        # (for each N1 of a grid, Emax is a closed-form least-squares coefficient).
        if init is not None and init.law == self.name and "Emax" in init.params:
            p = init.params
            starts = [[p["Kmax"], np.log10(p["N0"]), p["Emax"], np.log10(p["N1"])]]
        else:
            free, _, _ = self._fit_free(points, None)
            E = np.array(list(free["E"].values())) - self._intercept_shift(free, points.sizes)
            best = None
            for log_n1 in np.linspace(np.log10(points.sizes[0]) - 2, np.log10(points.sizes[-1]) + 2, 41):
                h = points.sizes / (points.sizes + 10.0**log_n1)
                emax = float(h @ E / (h @ h))
                err = float(np.sum((emax * h - E) ** 2))
                if best is None or err < best[0]:
                    best = (err, emax, log_n1)
            starts = [[free["Kmax"], np.log10(free["N0"]), best[1], best[2]]]
        base = self._bounds(points)
        bounds = Bounds(("Kmax", "N0", "Emax", "N1"), np.r_[base.lower, -50.0, base.lower[1]],
                        np.r_[base.upper, 50.0, base.upper[1]])
        lx, log_N, sqrt_w = np.log10(points.X), np.log10(points.N), np.sqrt(points.weight)

        shift = self._log_n_phi(points.N)

        def residuals(theta):
            k = theta[0] / (1.0 + 10.0 ** (theta[1] - log_N))
            E = theta[2] / (1.0 + 10.0 ** (theta[3] - log_N)) + k * shift
            return sqrt_w * self.residuals(10.0 ** (E - k * lx), points.L)

        theta, cost = solve_multistart(residuals, starts, bounds)
        if self.loss == "huber":
            f_scale = huber_scale(residuals(theta))
            theta, cost = solve_multistart(residuals, [theta], bounds, loss="huber", f_scale=f_scale)
        params = {"Kmax": float(theta[0]), "N0": float(10.0 ** theta[1]), "Emax": float(theta[2]),
                  "N1": float(10.0 ** theta[3])}
        return params, 2.0 * cost / len(points), bounds.on_bound(theta)

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        self._check_x(points.x)
        if isinstance(self.phi, dict):
            # A fit knows the phi of its own sizes only: a size it did not see (a held-out one in
            # leave-one-size-out or a forward fold) gets their mean, never its own measured phi.
            known = {s: v for s, v in self.phi.items()
                     if np.isclose(points.sizes, s, rtol=1e-6, atol=0).any()}
            if not known:
                raise LawError(f"phi per size has no value for any fitted size "
                               f"({', '.join(format_size(s) for s in points.sizes)})")
            if len(known) < len(self.phi):
                return LogLinearKN(**{**self.get_options(), "phi": known})._fit_points(points, init=init)
        fit = self._fit_free if self.e_form == "free" else self._fit_saturating
        params, objective, bounds_hit = fit(points, init)
        return self._result(points, params, objective=objective, bounds_hit=bounds_hit)

    def refit_intercepts(self, fitted: FittedLaw, points: Points) -> FittedLaw:
        """New intercepts (closed form, this law's space; least squares) for the sizes in
        `points`, Kmax and N0 kept: the paper's inter-model variant."""
        if "E" not in fitted.params:
            raise LawError("loglinear_kn with e_form='saturating' has no free intercepts to refit")
        E = solve_intercepts(self.k(fitted.params, points.N), points, self.space)
        merged = {**fitted.params["E"], **{float(s): float(e) for s, e in zip(points.sizes, E, strict=True)}}
        sizes = sorted(set(fitted.sizes) | {float(s) for s in points.sizes})
        return FittedLaw(law=self.name, x=fitted.x, params={**fitted.params, "E": merged},
                         options=fitted.options, metrics={}, bounds_hit=list(fitted.bounds_hit),
                         sizes=sizes)


def _numeric_mapping(phi: dict) -> dict:
    try:
        return {float(size): float(value) for size, value in phi.items()}
    except (TypeError, ValueError):
        raise LawError(f"phi per size must map sizes to numbers, got {phi!r}") from None


@register
class LogLinear(Law):
    """Free per-size log-linear lines: shows whether k(N) saturates without assuming it."""

    name = "loglinear"
    min_sizes = 1
    min_points_per_size = 3
    per_size = True

    def k(self, params, N):
        return per_size_value(params["k"], N, "slope k", self.name)

    def E(self, params, N):
        return per_size_value(params["E"], N, "intercept E", self.name)

    def curve(self, params, N, X):
        return 10.0 ** (self.E(params, N) - self.k(params, N) * np.log10(X))

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        slopes = _slopes_per_size(points)
        index = points.size_index
        k_all, E_all, total_cost, bounds_hit = {}, {}, 0.0, []
        bounds = Bounds(("k",), np.array([-5.0]), np.array([5.0]))
        for i, size in enumerate(points.sizes):
            # This size's points with their share of the global weights (so costs add up).
            one = replace(points.subset(index == i), weight=points.weight[index == i])
            lx, sqrt_w = np.log10(one.X), np.sqrt(one.weight)

            def residuals(theta, one=one, lx=lx, sqrt_w=sqrt_w, f_scale=None):
                k_point = np.full(len(one), theta[0])
                E = solve_intercepts(k_point, one, self.space, f_scale=f_scale)[0]
                return sqrt_w * self.residuals(10.0 ** (E - theta[0] * lx), one.L)

            theta, cost = solve_multistart(residuals, [[slopes[i]]], bounds)
            f_scale = None
            if self.loss == "huber":
                f_scale = huber_scale(residuals(theta))
                theta, cost = solve_multistart(lambda t, r=residuals, s=f_scale: r(t, f_scale=s),
                                               [theta], bounds, loss="huber", f_scale=f_scale)
            k_all[float(size)] = float(theta[0])
            E_all[float(size)] = float(solve_intercepts(np.full(len(one), theta[0]), one, self.space,
                                                        f_scale=f_scale)[0])
            total_cost += cost
            bounds_hit += [f"k[{format_size(size)}]" for _ in bounds.on_bound(theta)]
        return self._result(points, {"k": k_all, "E": E_all}, objective=2.0 * total_cost / len(points),
                            bounds_hit=bounds_hit)
