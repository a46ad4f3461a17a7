"""`rlscale fit` on a CSV: JSON output, saved fit, human table, bad input."""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixture import KMAX, N0, make_run_root  # noqa: E402

from rlscale.cli import app  # noqa: E402
from rlscale.laws import FittedLaw  # noqa: E402
from rlscale.laws.synthetic import simulate_curves  # noqa: E402

runner = CliRunner()
SIZES = [1e6, 4e6, 16e6, 64e6]


def write_csv(path):
    truth = FittedLaw(law="loglinear_kn", x="C", params={
        "Kmax": 0.15, "N0": 8e6, "E": dict(zip(SIZES, [0.1, 0.3, 0.6, 0.9], strict=True))})
    table = simulate_curves(truth, SIZES, steps=range(0, 31), noise_std=0.003, runs=2,
                            tokens_per_step=2e4)
    table.drop(columns=["T"]).to_csv(path, index=False)
    return path


def test_fit_json_and_saved_law(tmp_path):
    csv = write_csv(tmp_path / "curves.csv")
    out = tmp_path / "fit.json"
    result = runner.invoke(app, ["fit", str(csv), "--law", "loglinear_kn", "--x", "C", "--json",
                                 "-o", str(out), "--e-form", "free"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["law"] == "loglinear_kn" and report["options"]["e_form"] == "free"
    assert {"Kmax", "N0", "E"} <= set(report["params"])
    assert set(report["params"]["E"]) == {repr(s) for s in SIZES}
    assert abs(report["params"]["Kmax"] / 0.15 - 1) < 0.1
    assert {"r2", "rmse", "r2_per_size"} <= set(report["metrics"])
    saved = FittedLaw.from_json(out)
    assert saved.params["Kmax"] == report["params"]["Kmax"]


def test_fit_of_a_c_and_d_table_defaults_to_the_joint_law(tmp_path):
    """Issue 10: with both columns the C-law is tied to the D-law (C = N D phi, phi per size)."""
    csv = write_csv(tmp_path / "curves.csv")
    report = json.loads(runner.invoke(app, ["fit", str(csv), "--json"]).stdout)
    assert report["options"]["e_form"] == "joint"
    phis = report["options"]["phi"]  # JSON keys: the sizes
    assert {float(size) for size in phis} == set(SIZES)
    assert list(phis.values()) == pytest.approx([6 * 2e4 / 512] * len(SIZES), rel=1e-9)  # 6 T / D
    assert FittedLaw.from_json(json.dumps(report)).estimator().phi == {  # read back keyed by size
        float(size): value for size, value in phis.items()}
    shown = runner.invoke(app, ["fit", str(csv)]).stdout
    assert "phi=per size 1M: 234.4" in " ".join(shown.split())  # not a dict dump
    assert {"Kmax", "N0", "Emax", "N1"} == set(report["params"])
    on_d = json.loads(runner.invoke(app, ["fit", str(csv), "--x", "D", "--json"]).stdout)
    assert on_d["options"]["e_form"] == "free"  # the D-law: today's behaviour
    c_only = tmp_path / "c_only.csv"
    pd.read_csv(csv).drop(columns=["D"]).to_csv(c_only, index=False)
    alone = json.loads(runner.invoke(app, ["fit", str(c_only), "--json"]).stdout)
    assert alone["options"]["e_form"] == "free"
    refused = runner.invoke(app, ["fit", str(c_only), "--e-form", "joint"])
    assert refused.exit_code == 2 and "needs both C and D" in refused.output


def test_fit_table_options_and_errors(tmp_path):
    csv = write_csv(tmp_path / "curves.csv")
    result = runner.invoke(app, ["fit", str(csv), "--law", "loglinear", "--x", "D", "--space", "log",
                                 "--warmup", "2", "--sizes", "4M,16M,64M"])
    assert result.exit_code == 0, result.output
    assert "per size" in result.output and "16M" in result.output and "1M " not in result.output
    bad = runner.invoke(app, ["fit", str(csv), "--x", "T"])
    assert bad.exit_code == 2 and "column 'T' has no values" in bad.output
    missing = runner.invoke(app, ["fit", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "nope.csv" in missing.output


def test_fit_a_run_root(tmp_path):
    make_run_root(tmp_path, seeds=2)
    result = runner.invoke(app, ["fit", str(tmp_path / "ladder"), "--x", "C", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["n_sizes"] == 5 and report["metrics"]["n_points"] == 5 * 30
    assert abs(report["params"]["Kmax"] / KMAX - 1) < 0.1
    assert abs(report["params"]["N0"] / N0 - 1) < 0.3


def test_saved_fit_carries_phi_so_plan_converts_units(tmp_path):
    csv = write_csv(tmp_path / "curves.csv")
    table = __import__("pandas").read_csv(csv)
    expected_phi = (table["C"] / (table["N"] * table["D"]))[table["D"] > 0].median()
    out = tmp_path / "fit.json"
    assert runner.invoke(app, ["fit", str(csv), "--x", "D", "-o", str(out)]).exit_code == 0
    phi = FittedLaw.from_json(out).metrics["phi"]
    assert abs(phi / expected_phi - 1) < 1e-6
    # a D-law planned with a FLOP budget needs phi: it comes from the fit file alone
    plan = runner.invoke(app, ["plan", str(out), "--budget-flops", "1e15", "--json"])
    assert plan.exit_code == 0, plan.output
    assert json.loads(plan.stdout)["phi"] == phi
