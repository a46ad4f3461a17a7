"""A form of k(N) fitted to per-size slopes: does the efficiency k saturate with model size?

The inputs are free per-size slopes k (one log-log line per size, `report.curves.free_slopes`)
with their standard errors. Two forms:

- "saturating": k(N) = Kmax / (1 + N0/N), the paper's (fitted in Kmax, log10 N0, with Kmax in
  [0, 10 max k] and N0 within 4 decades of the sizes);
- "loglinear": k(N) = a + b log10 N, no ceiling.

`fit_k_of_n` fits a form by weighted least squares (scipy's curve_fit, weights 1/sigma), says
whether a parameter ended on its bound (then it is not an estimate), and scores the form out of
sample by leave-one-size-out: the mean absolute error of each size's k predicted from a fit to the
other sizes' k. Fit failures raise RuntimeError or ValueError (scipy's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

K_FORMS = ("saturating", "loglinear")
SIGMA_FLOOR = 1e-6  # a slope's standard error is never taken below this (no infinite weight)
CI95_WIDTH = 3.92  # a 95% normal interval spans 2 x 1.96 standard errors


def _saturating(N, kmax, log_n0):
    return kmax / (1.0 + 10.0**log_n0 / N)


def _loglinear(N, a, b):
    return a + b * np.log10(N)


_CURVES = {"saturating": _saturating, "loglinear": _loglinear}


def _bounds(form: str, N: np.ndarray, k: np.ndarray):
    if form == "saturating":
        return [0.0, np.log10(N.min()) - 4], [10 * max(k.max(), 1e-6), np.log10(N.max()) + 4]
    return -np.inf, np.inf


def _start(form: str, N: np.ndarray, k: np.ndarray) -> list[float]:
    if form == "saturating":
        return [1.5 * k.max(), np.log10(np.median(N))]
    return [float(np.mean(k)), 0.0]


def _fit_theta(form: str, N: np.ndarray, k: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    theta, _ = optimize.curve_fit(_CURVES[form], N, k, p0=_start(form, N, k), sigma=sigma,
                                  bounds=_bounds(form, N, k), maxfev=20000)
    return theta


def _on_bound(form: str, theta, N: np.ndarray, k: np.ndarray) -> bool:
    lower, upper = _bounds(form, N, k)
    return bool(np.any(np.isclose(theta, lower, rtol=1e-6, atol=1e-9))
                or np.any(np.isclose(theta, upper, rtol=1e-6, atol=1e-9)))


def _loso_error(form: str, N: np.ndarray, k: np.ndarray, sigma: np.ndarray) -> float:
    errors = []
    for i in range(len(N)):
        keep = np.arange(len(N)) != i
        theta = _fit_theta(form, N[keep], k[keep], sigma[keep])
        errors.append(abs(_CURVES[form](N[i], *theta) - k[i]))
    return float(np.mean(errors))


def sigma_from_interval(k_lo, k_hi) -> np.ndarray:
    """Standard errors of slopes from their 95% intervals (width / 3.92), floored at 1e-6."""
    width = np.asarray(k_hi, float) - np.asarray(k_lo, float)
    return np.maximum(width / CI95_WIDTH, SIGMA_FLOOR)


@dataclass(frozen=True)
class KofNFit:
    """A k(N) form fitted to per-size slopes.

    params: saturating {"Kmax", "N0"}, loglinear {"a", "b"}; theta: the fitted vector
    (saturating: Kmax, log10 N0). on_bound: a parameter ended on its bound (not an estimate).
    loso_error: leave-one-size-out mean absolute error of k (nan when not computed)."""

    form: str
    params: dict[str, float]
    theta: tuple[float, ...]
    on_bound: bool
    loso_error: float
    sizes: tuple[float, ...] = field(default=())

    def predict(self, N) -> np.ndarray:
        """k at sizes N."""
        return _CURVES[self.form](np.asarray(N, float), *self.theta)


def fit_k_of_n(N, k, sigma=None, form: str = "saturating", *, loso: bool = True) -> KofNFit:
    """Fit the k(N) `form` ("saturating" or "loglinear") to slopes k at sizes N with standard
    errors sigma (None: equal weights); loso: also the leave-one-size-out error (needs 3+ sizes)."""
    if form not in K_FORMS:
        raise ValueError(f"k(N) form must be one of {', '.join(K_FORMS)}, got {form!r}")
    N, k = np.asarray(N, float), np.asarray(k, float)
    sigma = np.ones_like(k) if sigma is None else np.asarray(sigma, float)
    if not (N.shape == k.shape == sigma.shape and N.ndim == 1):
        raise ValueError(f"N, k and sigma must be 1-d of one length, got shapes {N.shape}, "
                         f"{k.shape}, {sigma.shape}")
    if not (np.all(np.isfinite(N)) and np.all(N > 0) and np.all(np.isfinite(k))
            and np.all(np.isfinite(sigma)) and np.all(sigma > 0)):
        raise ValueError("k(N) needs finite sizes N > 0, finite slopes k and finite sigma > 0")
    needed = 3 if loso else 2
    if len(N) < needed:
        raise ValueError(f"a k(N) form has 2 parameters: needs {needed}+ sizes"
                         f"{' for leave-one-size-out' if loso else ''}, got {len(N)}")
    theta = _fit_theta(form, N, k, sigma)
    if form == "saturating":
        params = {"Kmax": float(theta[0]), "N0": float(10.0 ** theta[1])}
    else:
        params = {"a": float(theta[0]), "b": float(theta[1])}
    return KofNFit(form=form, params=params, theta=tuple(float(t) for t in theta),
                   on_bound=_on_bound(form, theta, N, k),
                   loso_error=_loso_error(form, N, k, sigma) if loso else float("nan"),
                   sizes=tuple(float(n) for n in N))
