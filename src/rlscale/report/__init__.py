"""rlscale.report: figures, the paper's findings checked against runs, the HTML report.

`build_report(run_root, out_html=None) -> (html_path, md_path)`; see docs/report.md.
"""

from rlscale.report.analysis import Analysis, analyse
from rlscale.report.findings import Finding, check_findings
from rlscale.report.html import build_report

__all__ = ["Analysis", "Finding", "analyse", "build_report", "check_findings"]
