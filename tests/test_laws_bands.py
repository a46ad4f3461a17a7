"""Calibrated prediction bands: the correlated-residual model and the coverage it buys."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlscale.laws import prepare_points
from rlscale.laws.bootstrap import bootstrap, coverage, held_out_deviations
from rlscale.laws.noise import ResidualModel, ar1_series
from rlscale.laws.validate import inter_model, intra_run, resolve_law

PAPER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "paper"


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_ar1_part_recovers_rho_and_offsets_and_tilts():
    rng = np.random.default_rng(0)
    N, lx, r = [], [], []
    truth = {1e6: (0.01, -0.02), 1e7: (-0.005, 0.03), 1e8: (0.002, 0.0)}
    for size, (u, v) in truth.items():
        x = np.linspace(10, 12, 400)
        a = np.zeros(400)
        for t in range(1, 400):
            a[t] = 0.7 * a[t - 1] + rng.normal(0, 0.002)
        N += [size] * 400
        lx += list(x)
        r += list(u + v * (x - x.mean()) + a)
    model = ResidualModel.fit(np.array(N), np.array(lx), np.array(r))
    for size, (u, v) in truth.items():
        noise = model.sizes[size]
        assert noise.rho == pytest.approx(0.7, abs=0.08)
        assert noise.u == pytest.approx(u, abs=0.002)
        assert noise.v == pytest.approx(v, abs=0.004)
    series = ar1_series(model.sizes[1e6], 5000, np.random.default_rng(1))
    lag1 = np.corrcoef(series[:-1], series[1:])[0, 1]
    assert lag1 == pytest.approx(0.7, abs=0.05)


def test_few_deviations_give_heavier_tails_than_many():
    N = np.repeat([1e6, 1e7, 1e8], 20)
    lx = np.tile(np.linspace(10, 12, 20), 3)
    r = np.zeros(60)
    few = ResidualModel.fit(N, lx, r, deviations={1e6: (0.01, 0.0)}, forward={1e7: (0.01, 0.0)})
    many = ResidualModel.fit(N, lx, r, deviations={s: (0.01, 0.0) for s in (1e6, 1e7, 1e8)},
                             forward={float(s): (0.01, 0.0) for s in range(1, 41)})
    rng = np.random.default_rng(0)
    spread = {}
    for name, model in (("few", few), ("many", many)):
        draws = model.forecast(1e9, np.full(1, 13.0), np.ones(1), 4000, rng)
        spread[name] = np.percentile(np.abs(draws), 90)
    assert spread["few"] > 1.5 * spread["many"]  # t with 1 dof against t with 40


def test_forward_deviations_only_look_up_the_ladder():
    from rlscale.laws import FittedLaw
    from rlscale.laws.synthetic import simulate_curves

    sizes = [5e8, 1.5e9, 3e9, 7e9, 14e9]
    truth = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "Emax": 0.2, "N1": 5e9},
                      options={"e_form": "saturating"}, sizes=sizes)
    table = simulate_curves(truth, sizes, steps=range(1, 41), noise_std=0.004, seed=0)
    points = prepare_points(table, "D")
    law = resolve_law("loglinear_kn:e_form=saturating")
    fitted = law.fit(points, x="D")
    forward = held_out_deviations(points, law, fitted, forward=True)
    loo = held_out_deviations(points, law, fitted)
    assert set(forward) == {7e9, 14e9}  # the law needs 3 sizes below
    assert set(loo) == set(sizes)


def test_no_band_for_an_unseen_size_whose_spread_no_fold_measured():
    """Predicting a 4th size from 3: no fold can be refitted without one of them (the law needs
    3 sizes), so the across-size spread of an unseen size is unmeasured, and the in-sample
    offsets of a 4-parameter law on 3 sizes are about 0. That band held 7% of the miniature
    staged 862K's points at a nominal 90%: it is refused, with the reason. From 4 fitted sizes a
    band is made; fitted sizes keep their band either way."""
    from rlscale.errors import LawError
    from rlscale.laws import FittedLaw
    from rlscale.laws.bootstrap import bootstrap_protocol
    from rlscale.laws.synthetic import simulate_curves

    sizes = [5e8, 1.5e9, 3e9, 7e9, 14e9]
    truth = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "Emax": 0.2,
                                                         "N1": 5e9},
                      options={"e_form": "saturating"}, sizes=sizes)
    table = simulate_curves(truth, sizes, steps=range(1, 41), noise_std=0.004, seed=0)
    four = table[table["N"] < 14e9]
    result = inter_model(four, None, "D")
    boot = bootstrap_protocol(result, n=10, seed=0, level=0.9)
    with pytest.raises(LawError, match="at least 4 fitted sizes"):
        coverage(boot, result.heldout)
    lo, hi = boot.band([1.5e9], [result.heldout["X"].iloc[0]])  # a fitted size: banded
    assert lo[0] < hi[0]
    five = inter_model(table, None, "D")
    assert coverage(bootstrap_protocol(five, n=10, seed=0, level=0.9), five.heldout)["n"] > 0


def _coverage(table, x, protocol):
    result = intra_run(table, "loglinear_kn", x, fraction=0.25) if protocol == "intra" else \
        inter_model(table, None, x)
    train = result.train.to_frame().rename(columns={result.train.x: x})
    boot = bootstrap(train, result.law, x, n=60, seed=0, level=0.9)
    return coverage(boot, result.heldout)["overall"]


@pytest.mark.skipif(not (PAPER / "digitized_instruct_CD.csv").exists(), reason="shared data absent")
@pytest.mark.parametrize("x", ["C", "D"])
def test_paper_curves_intra_run_bands_are_calibrated(x):
    """90% bands on the last 75% of every Instruct curve, fitted on the first 25%. With
    independent or short-block residuals this was 77% (C); the issue's bar is 85-95%."""
    table = pd.read_csv(PAPER / "digitized_instruct_CD.csv")
    assert 0.85 <= _coverage(table, x, "intra") <= 0.95


@pytest.mark.skipif(not (PAPER / "digitized_instruct_CD.csv").exists(), reason="shared data absent")
@pytest.mark.parametrize("x", ["C", "D"])
def test_paper_curves_72b_band_covers_its_curve(x):
    """72B fully out of sample from 0.5B-32B: the old band held 3% (C, saturating) to 25% (C,
    joint) of 72B's points. Now the band is at least nominal (it is conservative: the spread of
    an extrapolation is learned from three earlier ones)."""
    table = pd.read_csv(PAPER / "digitized_instruct_CD.csv")
    assert _coverage(table, x, "inter") >= 0.85


def test_inter_model_band_covers_synthetic_targets_at_about_its_level():
    """Where the truth is the noise model's world (per-size offsets and tilts, AR(1) noise at
    the paper's measured scales) and many targets can be had, the 90% band of a fully
    out-of-sample size must hold most of them (bench/band_coverage.py --synthetic 150: 84% of
    points, 130/150 targets, on the paper's grid). Here all 10 targets are inside; a band without
    the across-size spread (offsets and tilts) holds 57% of the points, 6 targets mostly."""
    from rlscale.laws import FittedLaw
    from rlscale.laws.bootstrap import bootstrap_protocol
    from rlscale.laws.synthetic import simulate_curves, synthetic_ladders

    sizes = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9]
    truth = FittedLaw(law="loglinear_kn", x="D", sizes=sizes,
                      params={"Kmax": 0.15, "N0": 2e10, "Emax": 0.25, "N1": 3e10},
                      options={"e_form": "saturating"})
    grid = simulate_curves(truth, sizes, steps=range(4, 60, 2))
    inside, mostly = [], 0
    for ladder in synthetic_ladders(truth, grid, s_u=0.0036, s_w=0.23, rho=0.1, sd=0.006,
                                    ladders=10, seed=3):
        result = inter_model(ladder, None, "D")
        band = coverage(bootstrap_protocol(result, n=30, seed=0, level=0.9), result.heldout)
        inside.append(band["overall"])
        mostly += band["overall"] >= 0.5
    # 10 targets at a true 90%: 7 or more mostly inside with probability 0.99
    assert mostly >= 7, inside
    assert 0.7 <= np.mean(inside) <= 1.0
