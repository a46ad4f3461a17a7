"""The joint C/D law (loglinear_kn e_form='joint'): the C-law's intercept tied to a saturating
D-law by C = N D phi, and its use as the default fully-out-of-sample law for C."""

import numpy as np
import pandas as pd
import pytest

from rlscale.errors import LawError
from rlscale.laws import FittedLaw, get_law, pooled_phi
from rlscale.laws.synthetic import TOKENS_PER_STEP, simulate_curves
from rlscale.laws.validate import SATURATING_LAW, inter_model, predictive_law

SIZES = [5e8, 1.5e9, 3e9, 7e9, 1.4e10]
D_LAW = FittedLaw(law="loglinear_kn", x="D", sizes=SIZES,
                  params={"Kmax": 0.15, "N0": 1.5e10, "Emax": -0.05, "N1": 2e9},
                  options={"space": "linear", "loss": "linear", "e_form": "saturating"})


@pytest.fixture
def table() -> pd.DataFrame:
    """Curves drawn from a D-law with a flat-ish intercept; C = 6 N T, so phi = 6 T / D."""
    return simulate_curves(D_LAW, SIZES, steps=range(1, 60), noise_std=0.002, seed=3)


def test_the_joint_c_law_is_the_d_law_carried_through_phi(table):
    phi = pooled_phi(table)
    assert phi == pytest.approx(6 * TOKENS_PER_STEP / 512)
    joint = get_law("loglinear_kn", e_form="joint", phi=phi).fit(table, x="C")
    assert joint.params["Kmax"] == pytest.approx(0.15, rel=0.05)
    # Its intercept is E_D(N) + k(N) log10(N phi); its curve in C is the D-law's curve in D.
    N = np.array(SIZES)
    assert np.allclose(joint.E(N), D_LAW.E(N) + D_LAW.k(N) * np.log10(N * phi), atol=0.02)
    rows = table[table["run"] == table["run"].iloc[0]]
    assert np.allclose(joint.predict(rows["N"], rows["C"]), D_LAW.predict(rows["N"], rows["D"]),
                       rtol=0.01)


def test_joint_predicts_an_unseen_size_where_the_saturating_c_law_cannot(table):
    joint = inter_model(table, None, x="C")  # the default for C with a D column: joint
    assert "e_form=joint" in joint.law and joint.in_sample_parameters == []
    saturating = inter_model(table, SATURATING_LAW, x="C")
    assert joint.errors["overall"]["mape"] < 0.01
    assert joint.errors["overall"]["mape"] < saturating.errors["overall"]["mape"] / 3


def test_phi_of_the_default_law_comes_from_the_fitted_sizes_only(table):
    shifted = table.copy()
    target = shifted["N"] == SIZES[-1]
    shifted.loc[target, "C"] *= 10  # the held-out size's tokens must not inform phi
    assert predictive_law(shifted, "C", SIZES[:-1]) == predictive_law(table, "C", SIZES[:-1])
    assert predictive_law(table.drop(columns="D"), "C") == SATURATING_LAW
    assert predictive_law(table, "D") == SATURATING_LAW


def test_paper_instruct_72b_c_curve_through_the_joint_law(shared_data):
    """Measured: 72B fully out of sample from 0.5B-32B, C-law MAPE 8.5% with a saturating E(N),
    5.3% through the joint law (the D-law alone: 2.6%)."""
    table = pd.read_csv(shared_data / "paper" / "digitized_instruct_CD.csv")
    saturating = inter_model(table, SATURATING_LAW, x="C").errors["overall"]["mape"]
    joint = inter_model(table, None, x="C").errors["overall"]["mape"]
    d_law = inter_model(table, None, x="D").errors["overall"]["mape"]
    assert joint < 0.06 and joint < 0.7 * saturating
    assert d_law < 0.03


@pytest.mark.parametrize(("options", "x", "fragment"), [
    ({"e_form": "joint"}, "C", "needs phi"),
    ({"e_form": "joint", "phi": -3.0}, "C", "needs phi"),
    ({"e_form": "joint", "phi": float("nan")}, "C", "needs phi"),
    ({"e_form": "saturating", "phi": 10.0}, "C", "phi applies only"),
    ({"e_form": "joint", "phi": 10.0}, "D", "fit it on x='C'"),
])
def test_joint_options_are_checked(table, options, x, fragment):
    with pytest.raises(LawError, match=fragment):
        get_law("loglinear_kn", **options).fit(table, x=x)


def test_a_joint_fit_round_trips_through_json(table):
    fitted = get_law("loglinear_kn", e_form="joint", phi=pooled_phi(table)).fit(table, x="C")
    again = FittedLaw.from_json(fitted.to_json())
    assert np.allclose(again.predict(SIZES, [1e18] * 5), fitted.predict(SIZES, [1e18] * 5))
