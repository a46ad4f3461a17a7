"""rlscale.laws.k_of_n: k(N) forms fitted to per-size slopes, on-bound flags, LOSO errors."""

import math

import numpy as np
import pytest

from rlscale.laws.k_of_n import fit_k_of_n, sigma_from_interval

N = np.array([1e6, 3e6, 1e7, 3e7, 1e8, 3e8])


def saturating(N, kmax, n0):
    return kmax / (1 + n0 / N)


def test_saturating_recovers_known_parameters():
    k = saturating(N, 0.3, 2e7)
    fit = fit_k_of_n(N, k, np.full(len(N), 0.01), form="saturating")
    assert fit.params["Kmax"] == pytest.approx(0.3, rel=1e-5)
    assert fit.params["N0"] == pytest.approx(2e7, rel=1e-5)
    assert not fit.on_bound
    assert math.isfinite(fit.loso_error) and fit.loso_error < 1e-5
    assert fit.predict(N) == pytest.approx(k, rel=1e-5)


def test_loglinear_recovers_known_parameters():
    k = 0.05 + 0.02 * np.log10(N)
    fit = fit_k_of_n(N, k, form="loglinear")
    assert (fit.params["a"], fit.params["b"]) == pytest.approx((0.05, 0.02), rel=1e-6)
    assert not fit.on_bound and fit.loso_error < 1e-8


def test_forms_tell_a_ceiling_from_log_growth():
    sat_k, log_k = saturating(N, 0.3, 2e7), 0.05 + 0.02 * np.log10(N)
    sigma = np.full(len(N), 0.01)
    assert (fit_k_of_n(N, sat_k, sigma, "saturating").loso_error
            < fit_k_of_n(N, sat_k, sigma, "loglinear").loso_error)
    assert (fit_k_of_n(N, log_k, sigma, "loglinear").loso_error
            < fit_k_of_n(N, log_k, sigma, "saturating").loso_error)


def test_n0_far_beyond_the_sizes_is_on_a_bound():
    """k still growing linearly in N: N0 runs to its upper bound (4 decades past the sizes)."""
    fit = fit_k_of_n(N, 1e-9 * N, np.full(len(N), 1e-3), form="saturating")
    assert fit.on_bound
    assert math.log10(fit.params["N0"]) <= math.log10(N.max()) + 4 + 1e-6
    assert math.isfinite(fit.loso_error)


def test_without_loso_and_bad_input():
    k = saturating(N, 0.3, 2e7)
    assert math.isnan(fit_k_of_n(N, k, loso=False).loso_error)
    with pytest.raises(ValueError, match="form"):
        fit_k_of_n(N, k, form="sigmoid")
    with pytest.raises(ValueError, match="3\\+ sizes"):
        fit_k_of_n(N[:2], k[:2])
    with pytest.raises(ValueError, match="one length"):
        fit_k_of_n(N, k[:-1])
    with pytest.raises(ValueError, match="finite"):
        fit_k_of_n(N, np.where(N > 1e7, np.nan, k))


def test_sigma_from_interval():
    assert sigma_from_interval([0.1, 0.2], [0.1 + 3.92, 0.2]) == pytest.approx([1.0, 1e-6])
