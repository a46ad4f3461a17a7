"""The findings checked on the paper's own curves (digitized, in shared data): the verdicts the
paper reports must come out of them."""

import pandas as pd

from rlscale.report.analysis import analyse
from rlscale.report.findings import check_findings, reuse_tolerance
from rlscale.runs import RunTable


def test_paper_instruct_curves_show_growing_saturating_k(shared_data):
    table = RunTable.from_csv(shared_data / "paper" / "digitized_instruct_C.csv")
    found = {f.id: f for f in check_findings(analyse(table, progress=False, bootstrap_samples=0))}
    assert found[1].verdict == "yes"
    assert found[3].verdict == "yes"
    # The paper's N0 for these curves is 17-28B: saturation inside the 0.5B-72B range.
    assert 5e9 < found[3].numbers["N0"] < 72e9
    assert found[4].verdict == found[5].verdict == "inconclusive"  # no tau or G runs here


def test_paper_reuse_curves_tolerate_tau_25_not_50(shared_data):
    tau = pd.read_csv(shared_data / "paper" / "digitized_tau_base.csv")
    tau = tau.assign(N=7e9, run=[f"tau{t}" for t in tau["tau"]], experiment="reuse")
    finding = reuse_tolerance(analyse(tau, progress=False, bootstrap_samples=0))
    assert finding.verdict == "yes"
    assert finding.numbers["largest_tolerated_tau"] == 25
    assert finding.numbers["significant"][100.0]
