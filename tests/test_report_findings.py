"""Each finding's verdict on synthetic runs built to make it true, and to make it false."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from make_fixture import make_run_root  # noqa: E402

from rlscale.report.analysis import analyse  # noqa: E402
from rlscale.report.findings import check_findings  # noqa: E402
from rlscale.runs import RunTable  # noqa: E402


def _verdicts(root, **knobs):
    table = RunTable.load(make_run_root(root, **knobs))
    findings = check_findings(analyse(table, progress=False, bootstrap_samples=0))
    return {f.id: f for f in findings}


@pytest.fixture(scope="module")
def true_case(tmp_path_factory):
    """Saturating k(N), straight log-log lines, reuse harmless up to tau 5, larger G better."""
    return _verdicts(tmp_path_factory.mktemp("true"))


@pytest.fixture(scope="module")
def flat_case(tmp_path_factory):
    """k the same at every size, reuse hurting from tau 2, larger G worse."""
    return _verdicts(tmp_path_factory.mktemp("flat"), k_of_n="flat", reuse_onset=0.0,
                     g_gain=-0.05, seeds=1)


def test_true_case_verdicts(true_case):
    assert {i: true_case[i].verdict for i in (1, 2, 3, 4, 5)} == dict.fromkeys(
        (1, 2, 3, 4, 5), "yes")
    assert true_case[1].numbers["C"]["slope_ci"][0] > 0
    assert true_case[1].numbers["D"]["slope_ci"][0] > 0
    assert true_case[4].numbers["largest_tolerated_tau"] == 5
    assert true_case[4].numbers["significant"][20.0]
    assert true_case[5].numbers["delta_ci"][1] < 0
    assert "tau = 5" in true_case[4].evidence and "95% CI" in true_case[1].evidence


def test_false_case_verdicts(flat_case):
    assert flat_case[1].verdict == "no"
    assert flat_case[3].verdict == "inconclusive"  # no growth, so nothing to saturate
    assert "no growth to saturate" in flat_case[3].evidence
    assert flat_case[4].verdict == "no" and flat_case[4].numbers["largest_tolerated_tau"] == 1
    assert flat_case[5].verdict == "no"


def test_k_growing_without_ceiling_is_not_saturation(tmp_path):
    found = _verdicts(tmp_path, k_of_n="log", seeds=1)
    assert found[1].verdict == "yes"
    assert found[3].verdict == "no"
    assert found[3].numbers["loso_loglinear"] < found[3].numbers["loso_saturating"]


def test_bent_curves_are_not_log_log_linear(tmp_path):
    found = _verdicts(tmp_path, bend=0.1, seeds=1)
    assert found[2].verdict == "no"
    assert min(found[2].numbers["noise_ratio"].values()) > 3


def test_one_eval_set_leaves_benchmark_finding_inconclusive(true_case):
    assert true_case[8].verdict == "inconclusive"
    assert "one eval set" in true_case[8].evidence


def test_second_eval_set_is_reported_but_not_fitted(tmp_path):
    found = _verdicts(tmp_path, seeds=1, extra_eval_set="ood<b>")
    assert found[8].verdict == "inconclusive"
    assert "ood<b>" in found[8].evidence and "holdout" in found[8].evidence
    moved = found[8].numbers
    assert moved["holdout"]["last"] < moved["holdout"]["first"] - 0.1
    assert abs(moved["ood<b>"]["last"] - moved["ood<b>"]["first"]) < 0.01
    assert found[1].verdict == "yes"  # the laws still see only the primary set


def test_flat_noisy_curves_are_not_a_straight_line_finding(tmp_path):
    """A flat noisy curve is "predicted within noise" by a line of slope ~0: finding 2 must also
    see the line beat a flat line out of sample and a slope different from 0."""
    found = _verdicts(tmp_path, k_of_n="zero", seeds=1)
    assert found[2].verdict != "yes"
    assert not all(found[2].numbers["slope_nonzero"].values())
    assert "slope distinguishable from 0" in found[2].evidence or "flat line" in found[2].evidence


def test_straight_lines_beat_the_flat_line(true_case):
    assert all(true_case[2].numbers["beats_flat"].values())
    assert all(true_case[2].numbers["slope_nonzero"].values())


def test_k_rising_out_of_order_is_not_a_yes():
    """Finding 1 needs k in order (Spearman >= 0.9), not only a positive average trend."""
    from types import SimpleNamespace

    import pandas as pd

    from rlscale.report import findings as F

    k = [0.06, 0.05, 0.15, 0.14, 0.25]  # rising ~0.1 a decade, two pairs swapped: rho 0.8
    free = pd.DataFrame({"N": [1e6, 3e6, 1e7, 3e7, 1e8], "k": k})
    verdict = F._k_grows(SimpleNamespace(free={"C": free}, fits={}), "C")
    assert verdict.numbers["slope_ci"][0] > 0 and verdict.numbers["rho"] < F.MIN_RHO
    assert verdict.verdict == "inconclusive" and "not in order" in verdict.evidence
    in_order = F._k_grows(SimpleNamespace(free={"C": free.assign(k=sorted(k))}, fits={}), "C")
    assert in_order.verdict == "yes"
