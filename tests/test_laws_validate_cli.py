"""`rlscale predict` on CSV files, --json output parsed."""

import json

import pytest
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.laws import FittedLaw
from rlscale.laws.synthetic import simulate_curves

SIZES = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9]


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    truth = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "Emax": 0.2, "N1": 5e9},
                      options={"e_form": "saturating"}, sizes=SIZES)
    path = tmp_path_factory.mktemp("predict") / "curves.csv"
    simulate_curves(truth, SIZES, steps=range(0, 41), noise_std=0.004, seed=0).to_csv(path, index=False)
    return path


def run_json(*args):
    result = CliRunner().invoke(app, ["predict", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_inter_reports_held_out_errors_and_the_paper_variant(csv):
    report = run_json(csv, "--protocol", "inter", "--x", "D", "--refit-intercept")
    assert report["protocol"] == "inter_refit_intercept"
    assert report["in_sample_parameters"] == ["E(32B)"]
    assert set(report["params"]) == {"Kmax", "N0", "E"}
    overall = report["heldout"]["overall"]
    assert set(overall) == {"n", "mape", "rmse", "r2"} and overall["n"] == 40
    assert list(report["heldout"]["by_size"]) == ["32000000000.0"]
    oos = report["fully_out_of_sample"]
    assert oos["law"] == "loglinear_kn:e_form=saturating" and oos["in_sample_parameters"] == []
    assert oos["heldout"]["overall"]["rmse"] < 0.02


def test_intra_with_bootstrap_reports_coverage(csv):
    report = run_json(csv, "--protocol", "intra", "--x", "D", "--fraction", "0.3", "--bootstrap", "20")
    assert report["protocol"] == "intra"
    assert len(report["heldout"]["by_size"]) == len(SIZES)
    boot = report["bootstrap"]
    assert boot["n"] == 20 and 0.0 <= boot["coverage"]["overall"] <= 1.0
    assert boot["intervals"]["Kmax"]["lo"] <= boot["intervals"]["Kmax"]["hi"]


def test_loso_compares_laws(csv):
    report = run_json(csv, "--protocol", "loso", "--x", "D", "--law", "loglinear_kn:e_form=saturating",
                      "--law", "additive", "--law", "loglinear_kn")
    assert report["best"] == "loglinear_kn:e_form=saturating"
    assert "loglinear_kn" in report["failures"]


def test_human_output_and_errors(csv):
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(csv), "--protocol", "intra", "--x", "D"])
    assert result.exit_code == 0 and "held-out errors" in result.output
    result = runner.invoke(app, ["predict", str(csv), "--protocol", "inter", "--x", "D",
                                 "--law", "loglinear_kn"])
    assert result.exit_code == 2 and "cannot predict the unseen size" in result.output
    result = runner.invoke(app, ["predict", str(csv), "--protocol", "inter", "--target", "2B"])
    assert result.exit_code == 2 and "not in the data" in result.output
