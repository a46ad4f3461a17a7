"""Forecasting a run in progress: `laws.forecast.forecast_run` and `rlscale predict --until`."""

import json
import re
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.errors import LawError
from rlscale.laws import FittedLaw
from rlscale.laws.forecast import forecast_run
from rlscale.laws.synthetic import simulate_curves

N = 7e9
TRUTH = FittedLaw(law="loglinear_kn", x="C", params={"Kmax": 0.14, "N0": 5e9, "E": {N: 1.25}},
                  options={"e_form": "free"}, sizes=[N])


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def run():
    return simulate_curves(TRUTH, [N], steps=range(0, 101), noise_std=0.003, seed=1)


def test_forecast_of_the_rest_of_a_run_covers_what_the_run_did(run):
    young = run[run["step"] <= 40]
    forecast = forecast_run(young, 100, n=60)
    truth = run[run["step"] == 100]["L"].iloc[0]
    t = forecast.target
    assert t["step"] == 100 and t["lo"] <= t["L_pred"] <= t["hi"]
    assert t["lo"] <= truth <= t["hi"]
    assert abs(t["L_pred"] - truth) / truth < 0.03
    assert forecast.check["points"] == 3 and not forecast.check["drifting"]
    path = forecast.path
    assert path["step"].iloc[0] > 40 and path["step"].iloc[-1] == 100
    assert np.all(np.diff(path["X"]) > 0)
    assert np.all((path["lo"] <= path["L_pred"]) & (path["L_pred"] <= path["hi"]))


def test_a_compute_target_maps_to_a_later_step(run):
    young = run[run["step"] <= 40]
    last_c = young["C"].max()
    forecast = forecast_run(young, 2 * last_c, kind="C", n=30)
    assert forecast.target["X"] == pytest.approx(2 * last_c)
    assert forecast.target["step"] == pytest.approx(80, rel=0.02)  # C grows linearly in step


def test_a_run_that_bends_away_is_flagged_as_drifting(run):
    bent = run[run["step"] <= 60].copy()
    late = bent["step"] > 57  # the three points the check holds back
    bent.loc[late, "L"] = bent.loc[late, "L"] * 0.85  # a sudden drop the early line cannot see
    forecast = forecast_run(bent, 100, n=60)
    assert forecast.check["drifting"] and not any(forecast.check["inside"])


def test_the_ladder_gives_the_slope_and_the_own_line_is_reported_beside_it(run):
    young = run[run["step"] <= 30]
    ladder = FittedLaw(law="loglinear_kn", x="C", params={"Kmax": 0.14, "N0": 5e9, "E": {1e9: 1.0}},
                       options={"e_form": "free"}, sizes=[1e9])
    forecast = forecast_run(young, 100, ladder=ladder, n=30)
    slope = -np.polyfit(np.log10(forecast.path["X"]), np.log10(forecast.path["L_pred"]), 1)[0]
    assert slope == pytest.approx(float(TRUTH.k(N)), rel=1e-6)
    assert forecast.own_line is not None and "ladder" in forecast.law


@pytest.mark.parametrize("until, kind, message", [
    (30, "step", "step 30 is inside the observed run (last evaluated step 40)"),
    (1e3, "C", "inside the observed run"),
    (-5, "step", "must be a finite number above 0"),
    (100, "D", "a D target needs the forecast along D"),
    (100, "tokens", "the target must be one of step, C, D"),
])
def test_targets_that_are_not_forecasts_are_refused(run, until, kind, message):
    with pytest.raises(LawError, match=re.escape(message)):
        forecast_run(run[run["step"] <= 40], until, kind=kind, n=10)


def test_a_run_too_short_or_a_ladder_of_runs_is_refused(run):
    with pytest.raises(LawError, match="needs at least 6"):
        forecast_run(run[run["step"] <= 4], 100, n=10)
    two = simulate_curves(TRUTH.with_params(E={N: 1.25, 3e9: 0.76}), [3e9, N], steps=range(0, 30),
                          seed=0)
    with pytest.raises(LawError, match="one model size"):
        forecast_run(two, 100, n=10)


def test_cli_forecast_and_its_refusals(run, tmp_path):
    csv = tmp_path / "run.csv"
    run[run["step"] <= 40].to_csv(csv, index=False)
    runner = CliRunner()
    result = runner.invoke(app, ["predict", str(csv), "--until", "100", "--bootstrap", "30", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["target"]["step"] == 100 and report["check"]["points"] == 3
    text = runner.invoke(app, ["predict", str(csv), "--until", "100", "--bootstrap", "30"])
    assert text.exit_code == 0 and "at step 100: L =" in text.output
    inside = runner.invoke(app, ["predict", str(csv), "--until", "20"])
    assert inside.exit_code == 2 and "inside the observed run" in inside.output
    assert "Traceback" not in inside.output
    both = runner.invoke(app, ["predict", str(csv), "--until", "100", "--protocol", "intra"])
    flat = " ".join(both.output.replace("│", " ").split())  # rich wraps the usage error in a box
    assert both.exit_code == 2 and "no --protocol" in flat
