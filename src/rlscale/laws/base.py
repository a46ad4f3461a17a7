"""The shared machinery of every law: points to fit, the Law estimator, the FittedLaw result.

A law is fitted to `Points`: one point per (model size N, step), repeated runs averaged, each size
carrying equal total weight (the paper's convention), step 0 and optional warm-up steps dropped.
`Law.fit` returns a `FittedLaw`, a plain record (law name, options, params) that predicts, reports
its metrics and round-trips through JSON; protocols (validation, bootstrap, planning) build on it.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from rlscale.errors import DataError, LawError
from rlscale.files import atomic_write_text
from rlscale.units import format_size, size_key  # also re-exported: `from rlscale.laws.base import`

X_COLUMNS = ("C", "D", "T")
SPACES = ("linear", "log")
LOSSES = ("linear", "huber")


class LawWarning(UserWarning):
    """The fit ran but the data make a result doubtful (a flat curve, a parameter on a bound)."""


# --------------------------------------------------------------------------------------- points
@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class Points:
    """The points a law is fitted to, one per (N, step), sorted by N then X.

    `weight` gives every size the same total weight, normalised so that the mean weight is 1:
    the weighted mean of squared residuals is then the mean over sizes of each size's MSE.
    """

    x: str
    N: np.ndarray
    X: np.ndarray
    L: np.ndarray
    step: np.ndarray
    L_std: np.ndarray  # spread of L over the runs averaged into the point (0 for one run)
    n_runs: np.ndarray
    weight: np.ndarray

    @property
    def sizes(self) -> np.ndarray:
        return np.unique(self.N)

    @property
    def size_index(self) -> np.ndarray:
        """For each point, the index of its size in `sizes`."""
        return np.searchsorted(self.sizes, self.N)

    def __len__(self) -> int:
        return len(self.N)

    def subset(self, mask: np.ndarray) -> Points:
        """The points where `mask` holds, weights renormalised to equal total weight per size."""
        mask = np.asarray(mask)
        kept = {name: getattr(self, name)[mask] for name in ("N", "X", "L", "step", "L_std", "n_runs")}
        return replace(self, **kept, weight=equal_size_weights(kept["N"]))

    def for_sizes(self, sizes) -> Points:
        """Only the given sizes (each must be present)."""
        wanted = _match_sizes(self.sizes, sizes)
        return self.subset(np.isin(self.N, wanted))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"N": self.N, "step": self.step, self.x: self.X, "L": self.L,
                             "L_std": self.L_std, "n_runs": self.n_runs, "weight": self.weight})


def equal_size_weights(N: np.ndarray) -> np.ndarray:
    """Weights giving each size the same total, with mean weight 1."""
    sizes, inverse, counts = np.unique(N, return_inverse=True, return_counts=True)
    if len(N) == 0:
        return np.zeros(0)
    return len(N) / (len(sizes) * counts[inverse])


def _match_sizes(available: np.ndarray, wanted) -> np.ndarray:
    matched = []
    for size in np.atleast_1d(np.asarray(wanted, dtype=float)):
        hits = available[np.isclose(available, size, rtol=1e-6, atol=0)]
        if len(hits) == 0:
            have = ", ".join(format_size(s) for s in available)
            raise LawError(f"size N={format_size(size)} ({size:g}) is not in the data (sizes: {have})")
        matched.append(hits[0])
    return np.asarray(matched)


def prepare_points(table: pd.DataFrame | Points, x: str = "C", *, warmup: int = 0, sizes=None,
                   drop_step0: bool = True) -> Points:
    """Validate a law table and turn it into `Points`.

    table: columns N, L and `x` (C, D or T), optionally `run` and `step` (RunTable.law_table() or a
    CSV). Repeated runs are averaged per (N, step) (X averaged too: runs of a size differ in tokens),
    their spread kept in L_std. Without a step column each row is its own point (step = rank in X).
    warmup: drop steps 1..warmup (or the first `warmup` points of each size without steps).
    sizes: keep only these model sizes. Raises LawError naming the row or size at fault.
    """
    if isinstance(table, Points):
        points = table
        if points.x != x:
            raise LawError(f"points are in x={points.x!r}, asked for x={x!r}")
        return points if sizes is None else points.for_sizes(sizes)
    if x not in X_COLUMNS:
        raise LawError(f"x must be one of {', '.join(X_COLUMNS)}, got {x!r}")
    for column in ("N", x, "L"):
        if column not in table.columns:
            raise DataError(f"law table has no column {column!r} (columns: {list(table.columns)})",
                            field=column)
    df = table.reset_index(drop=True).copy()
    if df[x].isna().all() and len(df):
        raise DataError(f"column {x!r} has no values (fit another x?)", field=x)
    if "step" not in df.columns or df["step"].isna().all():
        df["step"] = 0.0  # numbered from the X ranks below, once X is known to be valid
        ranks_as_steps = True
    else:
        ranks_as_steps = False
    for column in ("N", x, "L", "step"):
        values = pd.to_numeric(df[column], errors="coerce")
        bad = values.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise LawError(f"row {row}: field {column!r} is missing or not a number "
                           f"({df[column].iloc[row]!r}) for size N={df['N'].iloc[row]}")
        df[column] = values.astype(float)
    if ranks_as_steps:
        df["step"] = df.groupby("N")[x].rank(method="first")
    if drop_step0:
        df = df[df["step"] > 0]
    # Rows are named by their position in the table given (a file's lines: RunTable.from_csv).
    bad_L = ~((df["L"] > 0) & (df["L"] <= 1))
    if bad_L.any():
        row, r = df.index[bad_L.to_numpy()][0], df[bad_L].iloc[0]
        raise LawError(f"row {row}: L={r['L']:g} outside (0, 1] for size "
                       f"N={format_size(r['N'])} at step {r['step']:g}")
    bad_X = ~((df[x] > 0) & np.isfinite(df[x]))
    if bad_X.any():
        row, r = df.index[bad_X.to_numpy()][0], df[bad_X].iloc[0]
        raise LawError(f"row {row}: {x}={r[x]:g} must be finite and > 0 for size "
                       f"N={format_size(r['N'])} at step {r['step']:g}")
    if not ((df["N"] > 0) & np.isfinite(df["N"])).all():
        raise LawError("every model size N must be finite and > 0")
    if sizes is not None:
        df = df[df["N"].isin(_match_sizes(np.unique(df["N"].to_numpy()), sizes))]
    if warmup:  # without a step column, step is the rank within the size: same rule
        df = df[df["step"] > warmup]
    if df.duplicated(["N", "step"]).any():  # repeated runs: averaged per point
        grouped = (df.groupby(["N", "step"], sort=True)
                   .agg(X=(x, "mean"), L=("L", "mean"), L_std=("L", "std"), n_runs=("L", "size"))
                   .reset_index())
        grouped["L_std"] = grouped["L_std"].fillna(0.0)
    else:  # one row a point: the same table without the groupby, 10x faster (bootstrap refits)
        grouped = (pd.DataFrame({"N": df["N"], "step": df["step"], "X": df[x], "L": df["L"],
                                 "L_std": 0.0, "n_runs": 1})
                   .sort_values(["N", "step"]).reset_index(drop=True))
    if grouped.empty:
        raise LawError(f"no points left to fit (after dropping step 0 and {warmup} warm-up steps)")
    counts = grouped.groupby("N").size()
    short = counts[counts < 2]
    if len(short):
        size = float(short.index[0])
        raise LawError(f"size N={format_size(size)} ({size:g}) has {int(short.iloc[0])} point; "
                       "a curve needs at least 2")
    grouped = grouped.sort_values(["N", "X"], kind="stable")
    N = grouped["N"].to_numpy(float)
    return Points(x=x, N=N, X=grouped["X"].to_numpy(float), L=grouped["L"].to_numpy(float),
                  step=grouped["step"].to_numpy(float), L_std=grouped["L_std"].to_numpy(float),
                  n_runs=grouped["n_runs"].to_numpy(int), weight=equal_size_weights(N))


# C = N D phi ties the C-law to the D-law; one table's C and D must agree for phi to mean anything.
# Within a size phi is the running mean of 6 x tokens per prompt: it drifts as responses lengthen
# (the paper's Instruct curves: at most 1.34x from a size's first row to its last, every row within
# 1.2x of its size's median), so a row 10x off its size's median is C and D from different rows or
# in different units, not a drift.
PHI_ROW_SPREAD = 10.0
# Across sizes the pooled phi stands in for each size's own (the joint C-law of an unseen size).
# With a spread max/min <= 2 every size's phi is within sqrt(2) of the pooled (geometric-mean)
# value, which moves that law's log10 L by at most k log10(sqrt 2) ~ 0.02 (4.6% in L at the
# paper's Kmax 0.133), the size of the paper's own joint 72B error (5.3%); beyond 2x the pooling
# error alone would outweigh it. Measured: the paper's Instruct sizes span 1.3x, the miniature's 0.3%.
PHI_POOL_SPREAD = 2.0


def _where(rows: pd.DataFrame, limit: int = 5) -> str:
    """'step 7' / 'steps 3, 7, 9 and 2 more' (or rows of the table when it has no steps)."""
    if "step" in rows.columns and rows["step"].notna().all():
        name, values = "step", [f"{v:g}" for v in rows["step"]]
    else:
        name, values = "row", [str(i) for i in rows.index]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"{name}{'s' if len(values) > 1 else ''} {', '.join(values[:limit])}{more}"


def check_c_d_agree(table: pd.DataFrame) -> None:
    """Raise LawError unless the table's C and D describe the same steps, size by size: both
    given on the same rows (step 0 may have neither), both cumulative (non-decreasing in step,
    per run), and C/(N D) within PHI_ROW_SPREAD of the size's median on every row. These are
    what a broken merge of a C table and a D table looks like: a merge shifted by a step leaves
    D missing at one end, a shift by a row carries the next size's (smaller) D onto a size's last
    row, D in tokens instead of prompts on some rows moves phi by orders of magnitude. (An inner
    merge shifted by one step with a fixed batch stays consistent: no check on the values sees it.)
    Sizes with no row carrying both C and D are not checked (no phi is estimated for them)."""
    df = table.reset_index(drop=True)
    C = pd.to_numeric(df["C"], errors="coerce")
    D = pd.to_numeric(df["D"], errors="coerce")
    has_C, has_D = (C > 0) & np.isfinite(C), (D > 0) & np.isfinite(D)
    steps = pd.to_numeric(df["step"], errors="coerce") if "step" in df.columns else None
    prefix = "C and D disagree on steps: size N="
    for size, rows in df.groupby("N", sort=True):
        name = format_size(float(size))
        both = has_C[rows.index] & has_D[rows.index]
        if not both.any():
            continue
        for have, lack in (("C", "D"), ("D", "C")):
            only = (has_C if have == "C" else has_D)[rows.index] & ~both
            if only.any():
                raise LawError(f"{prefix}{name} has {have} but no {lack} at "
                               f"{_where(rows[only])} (both at its other steps); C and D must "
                               "come from the same step records (a merge shifted by a step, or "
                               f"{lack} missing on some rows?)")
        if steps is not None:
            groups = rows.groupby("run", sort=False) if "run" in rows.columns else [(None, rows)]
            for run, group in groups:
                group = group[both[group.index]]
                order = steps[group.index]
                if order.isna().any() or order.duplicated().any():
                    continue  # no steps, or several runs without a run column: no order to check
                group = group.loc[order.sort_values(kind="stable").index]
                for column, other in (("D", "C"), ("C", "D")):
                    values = pd.to_numeric(group[column]).to_numpy(float)
                    falls = np.flatnonzero(values[1:] < values[:-1] * (1 - 1e-9))
                    if len(falls):
                        i = int(falls[0])
                        before, after = group.iloc[i], group.iloc[i + 1]
                        rises = "rises" if float(after[other]) >= float(before[other]) else "falls too"
                        several = run is not None and rows["run"].nunique() > 1
                        in_run = f" (run {run})" if several else ""
                        raise LawError(f"{prefix}{name}{in_run}: {column} falls from "
                                       f"{float(before[column]):g} at step {float(before['step']):g} "
                                       f"to {float(after[column]):g} at step "
                                       f"{float(after['step']):g} while {other} {rises}; both are "
                                       "cumulative over the same steps (rows of C and D merged "
                                       "out of line?)")
        log_phi = np.log10(C[rows.index][both] / (float(size) * D[rows.index][both]))
        median = float(np.median(log_phi))
        off = (log_phi - median).abs() > math.log10(PHI_ROW_SPREAD)
        if off.any():
            worst = float(10.0 ** (log_phi[off] - median).abs().max())
            raise LawError(f"{prefix}{name}: phi = C/(N D) at {_where(rows.loc[off[off].index])} "
                           f"is up to {worst:.0f}x off the size's median {10.0**median:.3g} "
                           f"(more than {PHI_ROW_SPREAD:g}x); C and D from different rows or in "
                           "different units?")


def estimate_phi(table: pd.DataFrame) -> dict[float, float]:
    """phi = C / (N D) per size: the geometric mean over the size's rows with C, D > 0 (the laws
    live in log space, so the log of phi is what is averaged). C = N D phi ties the C-law to the
    D-law (laws.consistency, the joint form of loglinear_kn). Raises LawError where C and D do
    not describe the same steps (`check_c_d_agree`)."""
    missing = [c for c in ("N", "C", "D") if c not in table.columns]
    if missing:
        raise LawError(f"estimating phi = C/(N D) needs columns N, C and D; missing {', '.join(missing)}")
    table = table.reset_index(drop=True)  # rows are matched by label below: concatenated tables repeat them
    check_c_d_agree(table)
    C = pd.to_numeric(table["C"], errors="coerce")
    D = pd.to_numeric(table["D"], errors="coerce")
    rows = table[(C > 0) & (D > 0)]  # NaN compares False: dropped too
    if rows.empty:
        raise LawError("no row has both C > 0 and D > 0 to estimate phi = C/(N D)")
    log_phi = np.log10(C[rows.index] / (rows["N"] * D[rows.index]))
    return {float(n): float(10.0 ** g.mean()) for n, g in log_phi.groupby(rows["N"])}


def phi_by_size(table: pd.DataFrame, sizes=None) -> dict[float, float] | None:
    """Each size's phi (`estimate_phi`), over `sizes` only if given; None when the table lacks C
    or D. Raises LawError where the values span more than PHI_POOL_SPREAD (their geometric mean,
    which stands in for an unseen size's, is then no estimate of it) or C and D disagree on steps
    (`check_c_d_agree`). The miniature's phi is the same for every size within 0.3%; the paper's
    varies 43K-56K (0.5B-72B, 1.3x)."""
    if not {"N", "C", "D"} <= set(table.columns):
        return None
    if sizes is not None:
        table = table[table["N"].isin(_match_sizes(np.unique(table["N"].to_numpy(float)), sizes))]
    C = pd.to_numeric(table["C"], errors="coerce")
    D = pd.to_numeric(table["D"], errors="coerce")
    if not ((C > 0) & (D > 0)).any():
        return None
    phis = estimate_phi(table)
    low, high = min(phis.values()), max(phis.values())
    if high > PHI_POOL_SPREAD * low:
        listed = ", ".join(f"{format_size(n)}: {p:.3g}" for n, p in sorted(phis.items()))
        raise LawError(f"phi = C/(N D) varies {high / low:.3g}x across sizes ({listed}), more than "
                       f"the {PHI_POOL_SPREAD:g}x within which their mean may stand for an unseen "
                       "size's: C cannot be tied to D by phi (check each size's tokens per "
                       "prompt; fit on D (--x D), or drop the D column to fit C alone)")
    return phis


def pooled_phi(table: pd.DataFrame, sizes=None) -> float | None:
    """One phi for all sizes: the geometric mean of the per-size values (`phi_by_size`, with its
    checks), so every size counts once; None when the table lacks C or D."""
    phis = phi_by_size(table, sizes)
    return None if phis is None else float(10.0 ** np.mean(np.log10(list(phis.values()))))


def load_law_table(source, *, eval_set: str | None = None) -> pd.DataFrame:
    """A law table from a CSV file (columns N, L, C and/or D and/or T, optional run, step) or a
    run root / run directory (RunTable.law_table(eval_set))."""
    from pathlib import Path

    from rlscale.runs import RunTable

    path = Path(source)
    if path.is_dir():
        return RunTable.load(path).law_table(eval_set)
    if not path.exists():
        raise DataError("no such file or run directory", path=path)
    return RunTable.from_csv(path).law_table(eval_set)


# ---------------------------------------------------------------------------------- fitted law
@dataclass(frozen=True)
class FittedLaw:
    """A fitted law: what it is (law, options, x), its parameters, how well it fitted.

    params: scalars, or for per-size parameters a dict {float N: value}.
    metrics: `r2` (pooled, linear L, in-sample), `rmse` (linear L), `objective` (the minimised
    weighted loss), `mse`, `r2_per_size` {N: r2}, `n_points`, `n_sizes`.
    """

    law: str
    x: str
    params: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    bounds_hit: list[str] = field(default_factory=list)
    sizes: list[float] = field(default_factory=list)  # the sizes it was fitted on

    @property
    def space(self) -> str:
        return self.options.get("space", "linear")

    def estimator(self) -> Law:
        return get_law(self.law, **self.options)

    def predict(self, N, X) -> np.ndarray:
        """L at sizes N and X values (arrays, broadcast together)."""
        N, X = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(X, dtype=float))
        return self.estimator().curve(self.params, N, X)

    def k(self, N) -> np.ndarray:
        """Slope -d log10 L / d log10 X at size N, where the law defines one."""
        return self.estimator().k(self.params, np.asarray(N, dtype=float))

    def E(self, N) -> np.ndarray:
        """Intercept log10 L at X = 1 for size N, where the law defines one."""
        return self.estimator().E(self.params, np.asarray(N, dtype=float))

    def with_params(self, **updates) -> FittedLaw:
        """A copy with some parameters replaced (metrics no longer describe it: cleared)."""
        unknown = set(updates) - set(self.params)
        if unknown:
            raise LawError(f"{self.law} has no parameter(s) {sorted(unknown)}")
        return replace(self, params={**self.params, **updates}, metrics={}, bounds_hit=[])

    def refit_intercepts(self, data, *, warmup: int = 0) -> FittedLaw:
        """Keep the shared parameters, fit only the per-size ones on `data` (the paper's
        inter-model variant: k(72B) predicted, E(72B) fitted on 72B's curve). Sizes in `data`
        get new intercepts; the others keep theirs."""
        points = prepare_points(data, self.x, warmup=warmup)
        return self.estimator().refit_intercepts(self, points)

    def evaluate(self, data, *, warmup: int = 0) -> dict[str, Any]:
        """Metrics of this law's predictions on `data` (held-out or in-sample)."""
        points = prepare_points(data, self.x, warmup=warmup)
        return compute_metrics(points, self.predict(points.N, points.X))

    # JSON: per-size dicts are keyed by size_key(N); floats written with full precision.
    def to_dict(self) -> dict[str, Any]:
        def encode(value):
            if isinstance(value, dict):
                return {size_key(k) if isinstance(k, (int, float)) else str(k): encode(v)
                        for k, v in value.items()}
            if isinstance(value, (np.floating, np.integer)):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                return None  # strict JSON has no NaN
            return value

        return {"law": self.law, "x": self.x, "options": encode(self.options),
                "params": encode(self.params), "metrics": encode(self.metrics),
                "bounds_hit": list(self.bounds_hit), "sizes": [float(s) for s in self.sizes]}

    def to_json(self, path=None, *, indent: int | None = 1) -> str:
        """The JSON text; with `path`, also written there atomically (a reader never sees half)."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FittedLaw:
        """Read a fitted law back, refusing anything a fit could not have written: a missing key,
        a string or a non-finite number for a parameter, a value outside the law's range (e.g.
        Kmax < 0), options the law does not take, a curve that is not finite at its sizes."""
        if not isinstance(data, dict):
            raise LawError(f"fitted-law JSON must be an object, got {type(data).__name__}")
        try:
            law, x, params = data["law"], data["x"], data["params"]
        except KeyError as err:
            raise LawError(f"fitted-law JSON has no key {err.args[0]!r}") from None
        if not isinstance(law, str) or law not in LAWS:
            raise LawError(f"unknown law {law!r} in fitted-law JSON (known: {', '.join(LAWS)})")
        if x not in X_COLUMNS:
            raise LawError(f"fitted-law JSON: 'x' must be one of {', '.join(X_COLUMNS)}, got {x!r}")
        if not isinstance(params, dict) or not params:
            raise LawError("fitted-law JSON: 'params' must be a non-empty object")
        for key in ("options", "metrics"):
            if not isinstance(data.get(key, {}), dict):
                raise LawError(f"fitted-law JSON: {key!r} must be an object")
        metrics = dict(data.get("metrics", {}))
        if isinstance(metrics.get("r2_per_size"), dict):
            metrics["r2_per_size"] = _decode_sizes(metrics["r2_per_size"])
        phi = metrics.get("phi")
        if phi is not None and not is_positive_number(phi):
            raise LawError(f"fitted-law JSON: metrics.phi must be a positive number, got {phi!r}")
        sizes = data.get("sizes", [])
        if not isinstance(sizes, list) or not all(is_positive_number(s) for s in sizes):
            raise LawError(f"fitted-law JSON: 'sizes' must be a list of positive numbers, got "
                           f"{sizes!r}")
        fitted = cls(law=law, x=x, params={k: _read_param(k, v) for k, v in params.items()},
                     options=dict(data.get("options", {})), metrics=metrics,
                     bounds_hit=list(data.get("bounds_hit", [])),
                     sizes=[float(s) for s in sizes])
        _check_fitted(fitted)
        return fitted

    @classmethod
    def from_json(cls, text_or_path) -> FittedLaw:
        """From a JSON string, or a path to a file holding one."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            from pathlib import Path

            path = Path(text)
            try:
                text = path.read_text()
            except OSError as err:
                raise LawError(f"{path}: cannot read fitted law ({err.strerror})") from None
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise LawError(f"fitted-law JSON is malformed: {err}") from None


def _decode_sizes(value):
    if isinstance(value, dict):
        return {float(k): (float("nan") if v is None else float(v)) for k, v in value.items()}
    return value


def is_positive_number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def _finite_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_param(name: str, value):
    """One parameter of a fitted-law JSON: a finite number, or {size: finite number}."""
    if isinstance(value, dict):
        out = {}
        for size, v in value.items():
            try:
                key = float(size)
            except (TypeError, ValueError):
                key = math.nan
            if not (math.isfinite(key) and key > 0) or not _finite_number(v):
                raise LawError(f"fitted-law JSON: params.{name} must map sizes to finite numbers, "
                               f"got {size!r}: {v!r}")
            out[key] = float(v)
        if not out:
            raise LawError(f"fitted-law JSON: params.{name} is empty")
        return out
    if not _finite_number(value):
        raise LawError(f"fitted-law JSON: params.{name} must be a finite number, got {value!r}")
    return float(value)


def _check_fitted(fitted: FittedLaw) -> None:
    """The law takes these options, every parameter is in its range, and the curve is finite and
    positive at the law's sizes."""
    try:
        law = fitted.estimator()
        law._check_options()
    except TypeError as err:
        raise LawError(f"fitted-law JSON: options {fitted.options} do not fit {fitted.law} "
                       f"({err})") from None
    for name, (low, high) in law.param_ranges.items():
        value = fitted.params.get(name)
        if isinstance(value, float) and not (low <= value <= high):
            raise LawError(f"fitted-law JSON: {fitted.law} needs {low:g} <= {name} <= {high:g}, "
                           f"got {value:g}")
    sizes = list(fitted.sizes) or sorted({k for v in fitted.params.values() if isinstance(v, dict)
                                          for k in v}) or [1e9]
    try:
        values = fitted.predict(np.array(sizes), np.full(len(sizes), 1e6))
    except (KeyError, LawError, TypeError, ValueError) as err:
        missing = f"no parameter {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
        raise LawError(f"fitted-law JSON: {fitted.law} cannot be evaluated ({missing})") from None
    if not np.all(np.isfinite(values)) or np.any(np.asarray(values) <= 0):
        raise LawError(f"fitted-law JSON: {fitted.law} gives no finite positive loss at its sizes")


def prediction_errors(observed, predicted) -> dict[str, Any]:
    """n, MAPE (a fraction: 0.02 = 2%), RMSE and R^2 (around the observed mean; nan if the
    observed values do not vary) of predictions of a set of points; nan for no points.
    The one definition: the fit metrics (`compute_metrics`) and held-out errors use it."""
    obs, pred = np.asarray(observed, float), np.asarray(predicted, float)
    resid = pred - obs
    ss_tot = float(np.sum((obs - obs.mean()) ** 2)) if obs.size else 0.0
    return {
        "n": int(obs.size),
        "mape": float(np.mean(np.abs(resid) / obs)) if obs.size else math.nan,
        "rmse": float(np.sqrt(np.mean(resid**2))) if obs.size else math.nan,
        "r2": 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else math.nan,
    }


def compute_metrics(points: Points, predicted: np.ndarray, *, objective: float | None = None,
                    ) -> dict[str, Any]:
    """R^2 (pooled, in linear L), RMSE, MAPE, size-weighted MSE and R^2 per size."""
    residual = predicted - points.L
    pooled = prediction_errors(points.L, predicted)
    index = points.size_index
    per_size = {float(s): prediction_errors(points.L[index == i], predicted[index == i])["r2"]
                for i, s in enumerate(points.sizes)}
    metrics = {
        "r2": pooled["r2"],
        "rmse": pooled["rmse"],
        "mape": pooled["mape"],
        "mse": float(np.average(residual**2, weights=points.weight)),
        "r2_per_size": per_size,
        "n_points": len(points),
        "n_sizes": len(points.sizes),
    }
    if objective is not None:
        metrics["objective"] = float(objective)
    return metrics


# --------------------------------------------------------------------------------------- laws
LAWS: dict[str, type[Law]] = {}


def register(cls: type[Law]) -> type[Law]:
    LAWS[cls.name] = cls
    return cls


def get_law(name: str, **options) -> Law:
    """The law named `name` (a CLI name: loglinear_kn, loglinear, decomposition, sigmoid,
    additive), built with `options`."""
    if name not in LAWS:
        raise LawError(f"unknown law {name!r} (known: {', '.join(LAWS)})")
    try:
        return LAWS[name](**options)
    except TypeError:
        accepted = list(LAWS[name]().get_options())
        raise LawError(f"law {name!r} takes the options {accepted}, got {sorted(options)}") from None


class Law:
    """Base estimator. Options are plain attributes set in __init__ (scikit-learn style).

    space: 'linear' fits residuals of L (the paper), 'log' of log10 L.
    loss: 'linear' (least squares) or 'huber' (scale = 1.345 x the MAD of the least-squares
    residuals, so it adapts to the data's noise).
    Subclasses define `curve(params, N, X)` and `_fit_points(points, init=)`; those with free
    per-size intercepts also `refit_intercepts`, the log-linear ones `k` and `E`.
    """

    name: ClassVar[str] = ""
    # Ranges of scalar parameters a fit can produce; a fit file outside them is refused.
    param_ranges: ClassVar[dict[str, tuple[float, float]]] = {}
    min_sizes: ClassVar[int] = 1
    min_points_per_size: ClassVar[int] = 2
    per_size: ClassVar[bool] = False  # parameters exist only for fitted sizes

    def __init__(self, *, space: str = "linear", loss: str = "linear"):
        self.space = space
        self.loss = loss

    # --- options
    def get_options(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    def _check_options(self) -> None:
        if self.space not in SPACES:
            raise LawError(f"space must be one of {SPACES}, got {self.space!r}")
        if self.loss not in LOSSES:
            raise LawError(f"loss must be one of {LOSSES}, got {self.loss!r}")

    # --- fitting
    def fit(self, data, x: str | None = None, *, warmup: int = 0, sizes=None,
            init: FittedLaw | None = None) -> FittedLaw:
        """Fit to a law table (DataFrame) or to `Points`.

        x: the resource column (C, D or T); default: the points' own x, or C for a table.
        init: a previous fit of the same law used as the only start (fast refits in bootstraps).
        """
        self._check_options()
        if x is None:
            x = data.x if isinstance(data, Points) else "C"
        points = prepare_points(data, x, warmup=warmup, sizes=sizes)
        self._check_points(points)
        fitted = self._fit_points(points, init=init)
        if fitted.bounds_hit:
            warnings.warn(f"{self.name}: parameter(s) ended on a bound: {', '.join(fitted.bounds_hit)}",
                          LawWarning, stacklevel=2)
        return fitted

    def _check_points(self, points: Points) -> None:
        sizes = points.sizes
        if len(sizes) < self.min_sizes:
            raise LawError(f"law {self.name} needs at least {self.min_sizes} model sizes, data has "
                           f"{len(sizes)} ({', '.join(format_size(s) for s in sizes)})")
        index = points.size_index
        for i, size in enumerate(sizes):
            in_size = index == i
            n = int(in_size.sum())
            if n < self.min_points_per_size:
                raise LawError(f"size N={format_size(size)} ({size:g}) has {n} points; law "
                               f"{self.name} needs at least {self.min_points_per_size} per size")
            L, X = points.L[in_size], points.X[in_size]
            slope = np.polyfit(np.log10(X), np.log10(L), 1)[0] if np.ptp(X) > 0 else 0.0
            if np.ptp(L) == 0 or slope >= 0:
                warnings.warn(f"size N={format_size(size)} ({size:g}): the curve is flat or rising "
                              f"(log-log slope {slope:.3g}); a decreasing-loss law will fit it badly",
                              LawWarning, stacklevel=3)

    def _fit_points(self, points: Points, *, init: FittedLaw | None = None) -> FittedLaw:
        raise LawError(f"law {self.name!r} cannot be fitted")

    def _result(self, points: Points, params: dict, *, objective: float,
                bounds_hit: list[str]) -> FittedLaw:
        fitted = FittedLaw(law=self.name, x=points.x, params=params, options=self.get_options(),
                           bounds_hit=bounds_hit, sizes=[float(s) for s in points.sizes])
        predicted = fitted.predict(points.N, points.X)
        return replace(fitted, metrics=compute_metrics(points, predicted, objective=objective))

    # --- the curve
    def curve(self, params: dict, N: np.ndarray, X: np.ndarray) -> np.ndarray:
        raise LawError(f"law {self.name!r} has no curve")

    def k(self, params: dict, N: np.ndarray) -> np.ndarray:
        raise LawError(f"law {self.name!r} has no slope k(N)")

    def E(self, params: dict, N: np.ndarray) -> np.ndarray:
        raise LawError(f"law {self.name!r} has no intercept E(N)")

    def refit_intercepts(self, fitted: FittedLaw, points: Points) -> FittedLaw:
        raise LawError(f"law {self.name!r} has no per-size intercepts to refit")

    # --- helpers for subclasses
    def residuals(self, predicted: np.ndarray, L: np.ndarray) -> np.ndarray:
        """Residuals in the fitting space."""
        if self.space == "log":
            return np.log10(np.maximum(predicted, 1e-12)) - np.log10(L)
        return predicted - L


def per_size_value(values: dict[float, float], N: np.ndarray, name: str, law: str) -> np.ndarray:
    """Look up a per-size parameter for every entry of N; a size not fitted is a clear error."""
    N = np.asarray(N, dtype=float)
    sizes = np.array(sorted(values))
    vals = np.array([values[s] for s in sizes])
    flat = N.ravel()
    pos = np.clip(np.searchsorted(sizes, flat), 0, len(sizes) - 1)
    pos_low = np.clip(pos - 1, 0, len(sizes) - 1)
    pick = np.where(np.abs(sizes[pos_low] - flat) < np.abs(sizes[pos] - flat), pos_low, pos)
    found = np.isclose(sizes[pick], flat, rtol=1e-6, atol=0)
    if not found.all():
        missing = float(flat[~found][0])
        raise LawError(f"law {law}: no {name} for size N={format_size(missing)} ({missing:g}), which "
                       "was not fitted; refit its intercept on its data (refit_intercepts) or use "
                       "a parametric form")
    return vals[pick].reshape(N.shape)


# ------------------------------------------------------------------ bounded multi-start solver
@dataclass(frozen=True)
class Bounds:
    """Parameter vector bounds; the solver works in units of (upper - lower) for conditioning."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    def on_bound(self, theta: np.ndarray, rtol: float = 1e-6) -> list[str]:
        span = self.upper - self.lower
        near = (np.abs(theta - self.lower) <= rtol * span) | (np.abs(self.upper - theta) <= rtol * span)
        return [name for name, hit in zip(self.names, near, strict=True) if hit]

    def clip(self, theta: np.ndarray) -> np.ndarray:
        span = self.upper - self.lower
        return np.clip(theta, self.lower + 1e-9 * span, self.upper - 1e-9 * span)


def solve_multistart(residual_fn, starts, bounds: Bounds, *, loss: str = "linear",
                     f_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """Minimise 0.5 * sum rho(residual_fn(theta)^2) from each start (a fixed list: deterministic);
    return the best theta and its cost. Trust-region reflective, bounded.

    Two stages when there are several starts: each start runs to a loose tolerance, and only the
    best is polished to the tight one (the 8-parameter decomposition took 20 s for a
    leave-one-size-out on flat curves when every start was polished)."""
    span = bounds.upper - bounds.lower

    def solve(start, tol, max_nfev):
        return least_squares(residual_fn, bounds.clip(np.asarray(start, dtype=float)),
                             bounds=(bounds.lower, bounds.upper), x_scale=span, loss=loss,
                             f_scale=f_scale, method="trf", xtol=tol, ftol=tol, gtol=tol,
                             max_nfev=max_nfev)

    if len(starts) > 1:
        scouts = [solve(start, 1e-6, 300) for start in starts]
        finite = [r for r in scouts if np.isfinite(r.cost)]
        if not finite:
            raise LawError("the fit failed from every start (non-finite loss)")
        starts = [min(finite, key=lambda r: r.cost).x]
    result = solve(starts[0], 1e-12, 2000)
    if not np.isfinite(result.cost):
        raise LawError("the fit failed from every start (non-finite loss)")
    return result.x, float(result.cost)


def huber_scale(residuals: np.ndarray) -> float:
    """Huber threshold from a robust noise estimate: 1.345 x 1.4826 x MAD (95% efficiency)."""
    mad = float(np.median(np.abs(residuals - np.median(residuals))))
    return max(1.345 * 1.4826 * mad, 1e-9)
