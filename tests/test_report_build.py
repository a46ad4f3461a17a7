"""The HTML report built from a fixture run root: every figure there, self-contained, escaped."""

import re
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixture import make_run_root  # noqa: E402

from rlscale.cli import app  # noqa: E402
from rlscale.report.html import build_report  # noqa: E402

INJECTED = "<script>alert('x')</script>"
FIGURE_IDS = ["loss-C", "loss-D", "inter-C", "k-C", "k-D", "intra-C", "reuse-curves",
              "reuse-final", "order-curves", "group-D", "group-C", "response-length"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory) -> Path:
    return make_run_root(tmp_path_factory.mktemp("runs"), label=INJECTED)


@pytest.fixture(scope="module")
def report(run_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    html_path, md_path = build_report(run_root, out / "report.html", progress=False,
                                      figures_dir=out / "figures", bootstrap_samples=20)
    return html_path.read_text(), md_path.read_text(), out


def test_every_figure_is_embedded(report):
    html, _, out = report
    image_ids = re.findall(r'<img id="img-([\w-]+)"', html)
    assert image_ids == FIGURE_IDS
    assert html.count("<img ") == len(FIGURE_IDS)
    for fig_id in FIGURE_IDS:
        assert (out / "figures" / f"{fig_id}.png").stat().st_size > 10_000
    assert "skipped" not in html


def test_html_is_self_contained(report):
    html, _, _ = report
    sources = re.findall(r'\bsrc\s*=\s*"([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"\bhref\s*=", html)
    assert "<link" not in html.lower()
    assert "<script" not in html.lower()  # none of ours, and the injected one is escaped


def test_names_from_runs_are_escaped(report):
    html, md, _ = report
    assert INJECTED not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "tiny-0" in html  # the model names do reach the runs table


def test_report_states_findings_params_and_held_out_errors(report):
    html, md, _ = report
    for finding in (1, 2, 3, 4, 5, 7, 8):
        assert f'id="finding-{finding}"' in html
    assert "Kmax" in html and "N0" in html
    assert "intra-run" in md and "inter-model" in md and "leave-one-size-out" in md
    assert "C-law vs D-law consistency" in md and "NOT consistent" not in html
    assert "**yes**" in md  # the fixture is built so the paper's findings hold


def test_missing_experiments_are_skipped_with_a_note(run_root, tmp_path):
    ladder_only = tmp_path / "runs"
    shutil.copytree(run_root / "ladder", ladder_only / "ladder")
    html_path, md_path = build_report(ladder_only, tmp_path / "r.html", progress=False,
                                      bootstrap_samples=0)
    html = html_path.read_text()
    for fig_id in ("reuse-curves", "reuse-final", "group-D", "group-C"):
        assert f'id="fig-{fig_id}-missing"' in html
        assert f'id="img-{fig_id}"' not in html
    assert 'id="img-loss-C"' in html
    assert "no data-reuse (tau) runs" in md_path.read_text()


def test_cli_prints_where_it_wrote(run_root, tmp_path):
    out = tmp_path / "cli" / "r.html"
    result = CliRunner().invoke(app, ["report", str(run_root), "-o", str(out), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output and str(out.with_suffix(".md")) in result.output
    assert out.is_file() and out.with_suffix(".md").is_file()


def test_cli_reports_a_missing_root(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "nowhere" in result.output


def test_thin_run_roots_give_notes_not_errors(tmp_path):
    two_sizes = make_run_root(tmp_path / "two", sizes=(1e6, 1e7), seeds=1)
    html_path, md_path = build_report(two_sizes, tmp_path / "two.html", progress=False,
                                      bootstrap_samples=0)
    md = md_path.read_text()
    assert "needs at least 3 model sizes" in md  # why the law was not fitted
    assert 'id="img-loss-C"' in html_path.read_text()  # the data are still shown
    shutil.copytree(two_sizes / "reuse" / "tau1", tmp_path / "one" / "x" / "tau1")
    html_path, md_path = build_report(tmp_path / "one", None, progress=False, bootstrap_samples=0)
    assert html_path == tmp_path / "one" / "report.html"
    html = html_path.read_text()
    assert 'id="img-loss-C"' in html  # one run's curve is still drawn
    for fig_id in ("inter-C", "intra-C", "reuse-final", "group-D"):
        assert f'id="fig-{fig_id}-missing"' in html
    verdicts = re.findall(r"^- \*\*(\d)\. .*?\*\*: \*\*(\w+)\*\*", md_path.read_text(), re.M)
    # One size: only the straightness of its own curve (finding 2) can be judged.
    assert dict(verdicts) == {"1": "inconclusive", "2": "yes", "3": "inconclusive",
                              "4": "inconclusive", "5": "inconclusive", "7": "inconclusive",
                              "8": "inconclusive"}


def test_params_table_flags_a_parameter_on_its_bound():
    from types import SimpleNamespace

    from rlscale.laws import FittedLaw
    from rlscale.report.html import params_table

    def fitted(bounds_hit):
        return FittedLaw(law="loglinear_kn", x="C", params={"Kmax": 0.1, "N0": 2e3, "E": {1e6: 0.1}},
                         metrics={"r2": 0.9}, bounds_hit=bounds_hit)

    table = params_table(SimpleNamespace(fits={"C": fitted(["N0"]), "D": fitted([])}, boot={}))
    flags = dict(zip(table["law"] + " " + table["parameter"], table["on a bound"], strict=True))
    assert flags == {"loglinear_kn (C) Kmax": "", "loglinear_kn (C) N0": "yes",
                     "loglinear_kn (D) Kmax": "", "loglinear_kn (D) N0": ""}


def test_report_shows_band_coverage_rivals_and_run_forecasts(report):
    """Issue 10: coverage next to each band, the rivals ranked, each run's forecast."""
    import json

    html, md, out = report
    summary = json.loads((out / "report.json").read_text())
    protocols = {(p["protocol"], p["x"]): p for p in summary["protocols"]}
    for x in ("C", "D"):
        for name in ("intra", "inter_out_of_sample"):
            cov = protocols[(name, x)]["coverage"]
            assert cov["level"] == 0.9 and 0.0 <= cov["overall"] <= 1.0 and cov["n"] > 0
    rows = summary["rivals"]["C"]["rows"]
    laws = [r["law"] for r in rows]
    assert {"loglinear_kn", "sigmoid", "power_floor", "additive", "decomposition"} <= set(laws)
    assert any("joint" in law for law in laws)  # the table has D: the joint C/D law competes
    ranked = sorted((r for r in rows if r["loso_rank"] is not None), key=lambda r: r["loso_rank"])
    assert [r["loso_rmse"] for r in ranked] == sorted(r["loso_rmse"] for r in ranked)
    forecasts = summary["run_forecasts"]
    assert len(forecasts) == len(summary["sizes"])
    assert all(f["lo"] <= f["L_pred"] <= f["hi"] and f["step"] > f["fitted_to_step"]
               for f in forecasts)
    assert "in the 90% band" in html and "Rival forms" in html and "Forecasting a run" in html
    assert "Rival forms" in md and "Forecasting a run" in md


def test_report_compares_the_prompt_orders(report):
    """The fixture's curriculum run sits 0.02 above its shuffled twin at step 1 (L1 0.80 vs
    0.78), the same law after: the table reports it with the sign and an interval around it."""
    import json

    html, md, out = report
    rows = json.loads((out / "report.json").read_text())["prompt_order"]
    assert len(rows) == 1
    row = rows[0]
    assert row["diff"] == pytest.approx(row["L_curriculum"] - row["L_shuffle"])
    assert row["lo"] < row["diff"] < row["hi"] and row["runs"] == 2
    assert row["diff"] > 0 and row["verdict"] == ("shuffled better" if row["lo"] > 0
                                                  else "no difference")
    assert "Prompt order: curriculum vs shuffled" in html and "Prompt order" in md


def test_prompt_order_effect_calls_a_difference_only_outside_its_interval():
    import numpy as np
    import pandas as pd

    from rlscale.report.curves import prompt_order_effect

    rng = np.random.default_rng(0)
    rows = []
    for order, level in (("curriculum", 0.40), ("shuffle", 0.45)):
        for seed in range(3):
            for step in range(0, 40, 2):
                rows.append({"N": 1e6, "order": order, "run": f"{order}-{seed}", "step": step,
                             "L": level + rng.normal(0, 0.003)})
    effect = prompt_order_effect(pd.DataFrame(rows))
    assert effect["verdict"].tolist() == ["curriculum better"]
    assert effect["diff"].iloc[0] == pytest.approx(-0.05, abs=0.005)
    same = pd.DataFrame(rows).assign(L=lambda d: 0.45 + rng.normal(0, 0.003, len(d)))
    assert prompt_order_effect(same)["verdict"].tolist() == ["no difference"]
    assert prompt_order_effect(None).empty
