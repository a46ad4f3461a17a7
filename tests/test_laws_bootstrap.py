"""Bootstrap intervals and bands on synthetic curves from a known law."""

import json
import warnings

import numpy as np
import pytest

from rlscale.errors import LawError
from rlscale.laws import FittedLaw
from rlscale.laws.bootstrap import BootstrapResult, bootstrap, coverage
from rlscale.laws.synthetic import simulate_curves
from rlscale.laws.validate import intra_run

SIZES = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9]
TRUE = {"Kmax": 0.14, "N0": 5e9, "Emax": 0.2, "N1": 5e9}


def truth() -> FittedLaw:
    return FittedLaw(law="loglinear_kn", x="D", params=TRUE, options={"e_form": "saturating"}, sizes=SIZES)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def one_run():
    return simulate_curves(truth(), SIZES, steps=range(1, 61), noise_std=0.006, seed=3)


@pytest.fixture(scope="module")
def three_runs():
    return simulate_curves(truth(), SIZES, steps=range(1, 61, 2), noise_std=0.008, runs=4, seed=4)


def test_intervals_contain_the_truth_when_resampling_points(one_run):
    result = bootstrap(one_run, "loglinear_kn:e_form=saturating", "D", n=60, seed=0)
    assert set(result.method.values()) == {"ar1-residual"}
    intervals = result.intervals()
    for name in ("Kmax", "N0"):
        assert intervals[name]["lo"] <= TRUE[name] <= intervals[name]["hi"], (name, intervals[name])
        assert intervals[name]["lo"] < intervals[name]["estimate"] < intervals[name]["hi"]
    k72 = intervals["k(72000000000.0)"]
    assert k72["lo"] <= float(truth().k(72e9)) <= k72["hi"]
    assert "E(500000000.0)" in intervals


def test_intervals_contain_the_truth_when_resampling_runs(three_runs):
    result = bootstrap(three_runs, "loglinear_kn", "D", n=60, seed=0)
    assert set(result.method.values()) == {"runs"}
    intervals = result.intervals()
    for name in ("Kmax", "N0"):
        assert intervals[name]["lo"] <= TRUE[name] <= intervals[name]["hi"], (name, intervals[name])
    assert "E[7000000000.0]" in intervals and "E(7000000000.0)" not in intervals


def test_deterministic_by_seed(one_run):
    a = bootstrap(one_run, "loglinear_kn", "D", n=20, seed=7)
    b = bootstrap(one_run, "loglinear_kn", "D", n=20, seed=7)
    c = bootstrap(one_run, "loglinear_kn", "D", n=20, seed=8)
    assert a.intervals() == b.intervals()
    assert a.intervals() != c.intervals()
    N, X = np.array([7e9, 72e9]), np.array([5e3, 2e4])
    np.testing.assert_array_equal(a.band(N, X), b.band(N, X))


def test_coverage_of_held_out_points_is_near_nominal(one_run):
    split = intra_run(one_run, "loglinear_kn:e_form=saturating", "D", fraction=0.5)
    train = one_run.merge(split.heldout[["N", "step"]], on=["N", "step"], how="left", indicator=True)
    train = one_run[(train["_merge"] == "left_only").to_numpy()]
    result = bootstrap(train, "loglinear_kn:e_form=saturating", "D", n=60, seed=1, level=0.9)
    predicted = coverage(result, split.heldout)
    assert predicted["n"] == len(split.heldout)
    assert 0.75 <= predicted["overall"] <= 1.0  # nominal 0.9; loose, the noise is Gaussian
    mean_band = coverage(result, split.heldout, kind="mean")
    assert mean_band["overall"] < predicted["overall"]  # the curve's band ignores the noise


def test_json_round_trip_and_map(one_run):
    result = bootstrap(one_run, "loglinear_kn", "D", n=10, seed=2)
    again = BootstrapResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.intervals() == result.intervals()
    np.testing.assert_allclose(again.band([7e9], [1e4]), result.band([7e9], [1e4]))
    shifted = result.map(lambda f: f.with_params(Kmax=f.params["Kmax"] * 2))
    assert shifted.intervals()["Kmax"]["estimate"] == pytest.approx(2 * result.fitted.params["Kmax"])


def test_bad_arguments(one_run):
    with pytest.raises(LawError, match="level"):
        bootstrap(one_run, "loglinear_kn", "D", n=10, level=95)
    with pytest.raises(LawError, match="at least 2"):
        bootstrap(one_run, "loglinear_kn", "D", n=1)
