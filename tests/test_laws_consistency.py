"""The C-law / D-law consistency check (PAPER.md §4)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from rlscale.errors import LawError
from rlscale.laws import FittedLaw
from rlscale.laws.consistency import consistency, estimate_phi
from rlscale.laws.synthetic import PROMPTS_PER_STEP, TOKENS_PER_STEP, simulate_curves

SIZES = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9]


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def table():
    """Curves from a D-law; C = 6 N T = N D phi exactly (constant tokens per step)."""
    truth = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "Emax": 0.2, "N1": 5e9},
                      options={"e_form": "saturating"}, sizes=SIZES)
    return simulate_curves(truth, SIZES, steps=range(1, 61), noise_std=0.003, seed=5)


def test_phi_is_six_tokens_per_prompt(table):
    phi = estimate_phi(table)
    assert set(phi) == set(SIZES)
    for value in phi.values():
        assert value == pytest.approx(6 * TOKENS_PER_STEP / PROMPTS_PER_STEP, rel=1e-9)


def test_passes_when_compute_is_n_times_data_times_phi(table):
    result = consistency(table, "loglinear_kn")
    assert result.consistent
    assert result.per_size["k_rel_gap"].abs().max() < 0.01
    assert result.per_size["E_gap"].abs().max() < 0.01
    assert result.per_size["curve_gap"].max() < 0.002
    assert abs(result.shared["Kmax"]["rel_gap"]) < 0.01
    assert result.to_dict()["consistent"] is True


def test_fails_when_compute_is_not_proportional_to_data(table):
    broken = table.assign(C=table["C"] * (table["D"] / 512.0) ** 0.5)  # C grows faster than N D phi
    result = consistency(broken, "loglinear_kn")
    assert not result.consistent
    assert result.per_size["k_rel_gap"].abs().min() > 0.2


def test_needs_both_columns(table):
    with pytest.raises(LawError, match="columns N, C and D"):
        consistency(table.drop(columns="D"))
    with pytest.raises(LawError, match="k\\(N\\) and E\\(N\\)"):
        consistency(table, "additive")


def test_paper_instruct_curves_agree_in_slope_and_curve(shared_data):
    paper = shared_data / "paper"
    c = pd.read_csv(paper / "digitized_instruct_C.csv")
    d = pd.read_csv(paper / "digitized_instruct_D.csv")
    result = consistency(c.merge(d[["N", "step", "D"]], on=["N", "step"]), warmup=1)
    # the paper: k_C = k_D in theory; its own fits differ by ~10% (0.1294 vs 0.1438)
    assert result.per_size["k_rel_gap"].abs().max() < 0.15
    assert result.per_size["curve_gap"].max() < 0.01
    assert np.all(result.per_size["tokens_per_prompt"].between(5e3, 1.2e4))
