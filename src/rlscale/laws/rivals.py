"""Rival law forms on the same protocols, ranked by held-out error.

`rank_rivals(table)` runs, for each rival law, the intra-run protocol (fit the first `fraction`
of every size's curve, predict the rest: `validate.intra_run`) and leave-one-size-out fully out
of sample (`validate.leave_one_size_out`, refit_intercept=False: no parameter sees the held-out
size). A law with parameters only for the sizes it was fitted on cannot predict an unseen size:
its leave-one-size-out entry is "n/a" with the reason, never a number. Laws are ranked on each
protocol by held-out RMSE (lower is better), ties broken by MAPE.

The rivals (RIVALS):
- loglinear_kn: the paper's law as the paper fits it, a free intercept E per size (intra only);
- loglinear_kn:e_form=saturating: the paper's law with E(N) = Emax N / (N + N1), which predicts
  any size (both protocols);
- sigmoid: ScaleRL's sigmoid in X per size, after its initial-compute cut (intra only);
- power_floor: L = E_N + (B_N / X)^beta_N per size, a power law with a floor (intra only);
- additive: L = E + (A/N)^alpha + (B/X)^beta, one joint power law with a floor (both);
- decomposition: the paper's appendix-D loss decomposition (both);
- loglinear: free per-size lines, the form-free baseline (intra only).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import LawWarning, prepare_points
from rlscale.laws.validate import (
    LosoResult,
    ValidationResult,
    can_predict_unseen_size,
    intra_run,
    law_label,
    leave_one_size_out,
    resolve_law,
)

RIVALS = (
    "loglinear_kn",
    "loglinear_kn:e_form=saturating",
    "sigmoid",
    "power_floor",
    "additive",
    "decomposition",
    "loglinear",
)

NA_PER_SIZE = "n/a: one curve per size, cannot predict an unseen size"
NA_FREE_INTERCEPT = ("n/a: a free intercept per size, cannot predict an unseen size "
                     "(its parametric E(N) form can)")

COLUMNS = ["law", "intra_mape", "intra_rmse", "loso_mape", "loso_rmse", "intra_rank", "loso_rank",
           "loso_note"]


@dataclass
class RivalsTable:
    """The rivals' held-out errors, one row per law (`frame`, columns COLUMNS).

    intra_*: pooled over every held-out point of the intra-run protocol; loso_*: the mean over
    the left-out sizes of each fold's pooled error (NaN where n/a or failed, `loso_note` says
    which). MAPE is a fraction (0.02 = 2%), RMSE is in L. Ranks are 1 = best, missing where the
    law has no number. `failures`: law -> {protocol: reason} for fits that raised;
    `warnings`: law -> the LawWarnings its fits gave (parameters on bounds, flat curves)."""

    x: str
    fraction: float
    warmup: int
    frame: pd.DataFrame
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    intra: dict[str, ValidationResult] = field(default_factory=dict, repr=False)
    loso: LosoResult | None = field(default=None, repr=False)

    def best(self, protocol: str = "loso") -> str | None:
        """The law ranked first on `protocol` ('intra' or 'loso'), None if no law has a number."""
        if protocol not in ("intra", "loso"):
            raise LawError(f"protocol must be 'intra' or 'loso', got {protocol!r}")
        ranked = self.frame.dropna(subset=[f"{protocol}_rank"])
        if ranked.empty:
            return None
        return str(ranked.sort_values(f"{protocol}_rank").iloc[0]["law"])

    def to_dict(self) -> dict:
        """Plain JSON-ready data (NaN and missing ranks as None)."""
        def clean(value):
            if value is None or value is pd.NA:
                return None
            if isinstance(value, np.integer):
                return int(value)
            if isinstance(value, float | np.floating):
                return float(value) if math.isfinite(value) else None
            return value

        rows = [{key: clean(value) for key, value in row.items()}
                for row in self.frame.to_dict(orient="records")]
        return {"x": self.x, "fraction": self.fraction, "warmup": self.warmup,
                "ranked_by": "held-out RMSE, ties broken by MAPE", "rows": rows,
                "best": {"intra": self.best("intra"), "loso": self.best("loso")},
                "failures": self.failures, "warnings": self.warnings}


def rank_rivals(table, x: str = "C", *, laws=RIVALS, fraction: float = 0.25,
                warmup: int = 0) -> RivalsTable:
    """Every law in `laws` (spec strings or Law objects) on the intra-run protocol (first
    `fraction` of each curve fitted) and on leave-one-size-out fully out of sample where it can
    predict an unseen size; the table ranked by held-out RMSE, ties broken by MAPE."""
    points = prepare_points(table, x, warmup=warmup)  # validated once; the protocols reuse it
    rows, failures, caught, intra, loso_laws = [], {}, {}, {}, []
    for law in laws:
        label = law_label(law)
        row = {"law": label, "intra_mape": math.nan, "intra_rmse": math.nan,
               "loso_mape": math.nan, "loso_rmse": math.nan, "loso_note": ""}
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", LawWarning)
            try:
                # the table, not the points: a joint law's phi is measured on the fitted steps
                result = intra_run(table, law, x, fraction=fraction, warmup=warmup)
                intra[label] = result
                row["intra_mape"] = result.errors["overall"]["mape"]
                row["intra_rmse"] = result.errors["overall"]["rmse"]
            except LawError as err:
                failures.setdefault(label, {})["intra"] = str(err)
            note = _loso_not_applicable(law, intra.get(label), points.sizes)
        caught[label] = [str(w.message) for w in seen if issubclass(w.category, LawWarning)]
        if note:
            row["loso_note"] = note
        else:
            loso_laws.append(law)
        rows.append(row)

    loso = None
    if loso_laws:
        loso, loso_warnings = _run_loso(points, loso_laws, x)
        summary = loso.summary()
        for row in rows:
            label = row["law"]
            if label in summary:
                row["loso_mape"], row["loso_rmse"] = summary[label]["mape"], summary[label]["rmse"]
            elif label in loso.failures:
                failures.setdefault(label, {})["loso"] = loso.failures[label]
                row["loso_note"] = "failed: " + loso.failures[label]
            caught[label] = caught.get(label, []) + loso_warnings.get(label, [])

    frame = pd.DataFrame(rows)
    for protocol in ("intra", "loso"):
        frame[f"{protocol}_rank"] = _ranks(frame[f"{protocol}_rmse"], frame[f"{protocol}_mape"])
    return RivalsTable(x=x, fraction=fraction, warmup=warmup, frame=frame[COLUMNS],
                       failures=failures, warnings={k: v for k, v in caught.items() if v},
                       intra=intra, loso=loso)


def _loso_not_applicable(law, intra_result: ValidationResult | None, sizes) -> str:
    """Why `law` cannot be scored by leave-one-size-out ('' if it can, or if it is unknown: then
    the protocol runs and any error is a failure)."""
    try:
        estimator = resolve_law(law)
    except LawError:
        return ""  # the intra failure already records why
    if estimator.per_size:
        return NA_PER_SIZE
    if intra_result is not None and len(sizes) >= 2:
        probe = float(np.sqrt(sizes[0] * sizes[1]))  # a size between two fitted ones
        if not can_predict_unseen_size(intra_result.fitted, probe):
            return NA_FREE_INTERCEPT
    return ""


def _run_loso(points, laws, x) -> tuple[LosoResult, dict[str, list[str]]]:
    """leave_one_size_out, one law at a time so that each law's warnings are its own."""
    folds, failures, caught = {}, {}, {}
    for law in laws:
        label = law_label(law)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always", LawWarning)
            try:
                result = leave_one_size_out(points, [law], x, refit_intercept=False)
            except LawError as err:  # e.g. fewer than 3 sizes
                failures[label] = str(err)
                result = None
        caught[label] = [str(w.message) for w in seen if issubclass(w.category, LawWarning)]
        if result is not None:
            folds.update(result.folds)
            failures.update(result.failures)
    return LosoResult(x, folds, failures, refit_intercept=False), caught


def _ranks(rmse: pd.Series, mape: pd.Series) -> pd.Series:
    """1 = lowest RMSE, ties broken by MAPE (equal on both: equal rank); missing where NaN."""
    ranks = pd.Series(pd.NA, index=rmse.index, dtype="Int64")
    valid = [i for i in rmse.index if np.isfinite(rmse[i]) and np.isfinite(mape[i])]
    previous, rank = None, 0
    for position, i in enumerate(sorted(valid, key=lambda i: (rmse[i], mape[i])), start=1):
        key = (rmse[i], mape[i])
        if key != previous:
            rank, previous = position, key
        ranks[i] = rank
    return ranks
