"""rlscale.laws: scaling-law forms, fitting, validation, uncertainty and planning.

`get_law(name, **options).fit(table, x="C") -> FittedLaw`; see docs/laws.md.
"""

from rlscale.laws.base import (
    LAWS,
    FittedLaw,
    Law,
    LawWarning,
    Points,
    compute_metrics,
    estimate_phi,
    format_size,
    get_law,
    load_law_table,
    phi_by_size,
    pooled_phi,
    prepare_points,
    size_key,
)

# Importing the form modules registers them in LAWS.
from rlscale.laws import loglinear, parametric  # noqa: E402,F401  isort: skip

__all__ = ["LAWS", "FittedLaw", "Law", "LawWarning", "Points", "compute_metrics", "estimate_phi",
           "format_size", "get_law", "load_law_table", "phi_by_size", "pooled_phi", "prepare_points", "size_key"]
