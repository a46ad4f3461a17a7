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
    figure = tmp_path / "bands.png"
    report = run_json(fit_json, "--budget-prompts", "20000", "--data", csv, "--bootstrap", "10",
                      "--plot", figure)
    assert report["phi"] == pytest.approx(float(np.exp(np.log(table["C"] / (table["N"] * table["D"])).mean())))
    assert all(o["L_lo"] <= o["L"] <= o["L_hi"] for o in report["options"])
    # the frontier has the bands too (at the bootstrap's level), and the figure shades them
    assert report["frontier_kind"] == "data" and report["frontier_level"] == 0.95
    assert all(r["L_lo"] <= r["L"] <= r["L_hi"] for r in report["frontier"] if r["in_range"])
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_writes_a_png_and_the_json_gets_the_frontier(tmp_path, fit_json):
    out = tmp_path / "figs" / "plan.png"
    report = run_json(fit_json, "--budget-flops", "1e21", "--tokens-per-prompt", "8000", "--plot", out)
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 10_000
    assert report["frontier_kind"] == "compute" and report["frontier_level"] is None
    rows = report["frontier"]
    assert {r["N"] for r in rows} == set(SIZES)
    at_ask = min({r["budget"] for r in rows}, key=lambda b: abs(np.log10(b / 1e21)))
    assert [r["N"] for r in rows if r["budget"] == at_ask and r["optimal"]] == [report["best"]["N"]]
    # without --plot or --frontier the output is as before
    assert "frontier" not in run_json(fit_json, "--budget-flops", "1e21", "--tokens-per-prompt", "8000")


def test_plot_with_a_target_loss_and_a_data_budget(tmp_path, fit_json):
    target = tmp_path / "target.png"
    human = CliRunner().invoke(app, ["plan", str(fit_json), "--target-loss", "0.1", "--tokens-per-prompt",
                                     "8000", "--budget-range", "1e15,1e27", "--plot", str(target)])
    assert human.exit_code == 0, human.output
    assert target.read_bytes()[:8] == PNG
    assert "frontier" in human.output and str(target.name) in human.output
    data = tmp_path / "data.png"
    report = run_json(fit_json, "--budget-prompts", "20000", "--tokens-per-prompt", "8000",
                      "--plot", data)
    assert data.read_bytes()[:8] == PNG and report["frontier_kind"] == "data"
    frontier = run_json(fit_json, "--budget-prompts", "20000", "--tokens-per-prompt", "8000",
                        "--frontier")
    assert len(frontier["frontier"]) == len(report["frontier"])


def test_out_of_range_budgets_and_bad_figure_names_are_clear_errors(tmp_path, fit_json):
    out = tmp_path / "plan.png"
    for args, message in [
        (["--budget-flops", "1", "--plot", str(out)], "outside the range"),
        (["--budget-flops", "1e21", "--budget-range", "1e2,1e3", "--plot", str(out)], "outside the range"),
        (["--budget-flops", "1e21", "--budget-range", "1e22,1e20", "--frontier"], "LOW,HIGH"),
        (["--budget-flops", "1e21", "--plot", str(tmp_path / "plan.xyz")], ".png"),
    ]:
        result = CliRunner().invoke(app, ["plan", str(fit_json), "--tokens-per-prompt", "8000", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert not out.exists() and not (tmp_path / "plan.xyz").exists()
    assert list(tmp_path.iterdir()) == []  # no half-written figure either
