"""`rlscale plan` on a fitted-law JSON and on a tau table, --json output parsed."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.laws import FittedLaw

SIZES = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9]


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory):
    law = FittedLaw(law="loglinear_kn", x="C", params={"Kmax": 0.14, "N0": 5e9, "Emax": 3.0, "N1": 3e10},
                    options={"e_form": "saturating"}, sizes=SIZES)
    path = tmp_path_factory.mktemp("plan") / "fit.json"
    law.to_json(path)
    return path


def run_json(*args):
    result = CliRunner().invoke(app, ["plan", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_compute_budget(fit_json):
    report = run_json(fit_json, "--budget-flops", "1e21", "--tokens-per-prompt", "8000")
    assert report["goal"] == "compute" and report["phi"] == 48000
    losses = {o["N"]: o["L"] for o in report["options"]}
    assert report["best"]["N"] == min(losses, key=losses.get)
    assert report["continuous"]["L"] <= report["best"]["L"]
    assert report["best"]["steps"] == pytest.approx(1e21 / (report["best"]["N"] * 48000) / 512)


def test_target_loss_and_candidate_sizes(fit_json):
    report = run_json(fit_json, "--target-loss", "0.1", "--sizes", "7B,14B,32B",
                      "--tokens-per-prompt", "8000")
    assert [o["N"] for o in report["options"]] == [7e9, 14e9, 32e9]
    assert report["best"]["C"] == min(o["C"] for o in report["options"] if o["C"] is not None)


def test_data_budget_with_phi_and_bands_from_a_run_table(tmp_path, fit_json):
    from rlscale.laws.synthetic import simulate_curves

    table = simulate_curves(FittedLaw.from_json(fit_json), SIZES[2:], steps=range(1, 30), noise_std=0.003)
    csv = tmp_path / "runs.csv"
    table.to_csv(csv, index=False)
    report = run_json(fit_json, "--budget-prompts", "20000", "--data", csv, "--bootstrap", "10")
    assert report["phi"] == pytest.approx(float(np.exp(np.log(table["C"] / (table["N"] * table["D"])).mean())))
    assert all(o["L_lo"] <= o["L"] <= o["L_hi"] for o in report["options"])


def test_reuse_advice(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"tau": tau, "step": step, "L": 0.7 + 0.05 * (tau == 100) + rng.normal(0, 0.005)}
            for tau in (1, 5, 100) for step in range(1, 101)]
    path = tmp_path / "tau.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    report = run_json("--reuse", path)
    assert report["recommended_tau"] == 5
    assert [r["worse"] for r in report["per_tau"]] == [False, False, True]
    human = CliRunner().invoke(app, ["plan", "--reuse", str(path)])
    assert human.exit_code == 0 and "tau = 5" in human.output


def test_needs_exactly_one_goal(fit_json):
    result = CliRunner().invoke(app, ["plan", str(fit_json)])
    assert result.exit_code != 0 and "exactly one" in result.output


def test_reuse_advice_from_a_run_root(tmp_path):
    from rlscale.runs import RunWriter

    rng = np.random.default_rng(0)
    for tau in (1, 5, 100):
        for seed in range(2):
            run_id = f"tau{tau}-s{seed}"
            writer = RunWriter(tmp_path / "reuse" / run_id,
                               {"experiment": "reuse", "run_id": run_id, "N": 7e9, "tau": tau, "seed": seed})
            for step in range(1, 21):
                writer.log_step({"step": step, "D": step * 512, "C": step * 1e18, "T": step * 1e6})
                pass1 = 0.3 - 0.05 * (tau == 100) + rng.normal(0, 0.005)
                writer.log_eval({"step": step, "eval_set": "holdout", "pass1": pass1, "n_problems": 500,
                                 "samples": 1})
            writer.finish()
    report = run_json("--reuse", tmp_path)
    assert report["recommended_tau"] == 5
    assert "runs' final losses" in report["test"]
    assert [r["n"] for r in report["per_tau"]] == [2, 2, 2]
