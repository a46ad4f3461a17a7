"""RunTable: many runs as one tidy pandas table, and the law table the fits take."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from rlscale.errors import DataError, RunLogError
from rlscale.files import atomic_write_text
from rlscale.runs.read import Run, find_runs, read_run
from rlscale.runs.schema import RUN_KEYS, EvalRecord, StepRecord

# The columns come from the run format's tags (rlscale.runs.schema). RUN_KEYS: meta.json keys
# copied onto every row (NaN/None where a run lacks them).
# Step-record quantities that are cumulative, hence zero before the first step (step 0); every
# df has these columns.
CUMULATIVE = tuple(f for f in StepRecord.fields_where("cumulative")
                   if f in StepRecord.fields_where("table_column"))
# Other cumulative fields the trainer writes; zero at step 0 where a run has them.
CUMULATIVE_EXTRA = tuple(f for f in StepRecord.fields_where("cumulative") if f not in CUMULATIVE)
EVAL_COLUMNS = EvalRecord.fields_where("table_column")
LAW_COLUMNS = ["N", "run", "step", "C", "D", "T", "L"]


def short_count(n: float) -> str:
    """5e8 -> '500M', 1.5e9 -> '1.5B': compact, path-safe labels for model sizes."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{suffix}"
    return f"{n:.4g}"


def _cell(value):
    """A meta value as a table cell: scalars as they are, anything nested as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _run_label(run: Run) -> str:
    experiment = run.meta.get("experiment")
    return f"{experiment}/{run.run_id}" if experiment else run.run_id


class RunTable:
    """All runs as tables.

    `df`: one row per (run, step, eval_set): the eval record (`eval_set`, `pass1`, `L`,
    `n_problems`, `samples`, ...; eval fields that clash with step fields get an `_eval` suffix),
    the step record at that step (`D`, `D_unique`, `epoch`, `T`, `C`, `flops`, ...; zero at step 0),
    and the run keys (`run`, a unique label `<experiment>/<run_id>`, then RUN_KEYS and
    `primary_eval`). `steps`: every step record with the run keys.
    """

    def __init__(self, df: pd.DataFrame, steps: pd.DataFrame | None = None):
        self.df = df
        self.steps = steps if steps is not None else pd.DataFrame(columns=["run", "step"])

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def load(cls, root_or_dirs: Path | str | Iterable[Path | str]) -> RunTable:
        """Load every run under a root, or the given run directories (or roots)."""
        dirs = find_runs(root_or_dirs)
        if not dirs:
            raise RunLogError(f"{root_or_dirs}: no run directories (meta.json) found")
        runs = [read_run(path) for path in dirs]
        labels: dict[str, Path] = {}
        for run in runs:
            label = _run_label(run)
            if label in labels:
                raise RunLogError(
                    f"two runs share the id '{label}': {labels[label]} and {run.path}"
                )
            labels[label] = run.path
        eval_frames = [_eval_rows(run) for run in runs]
        step_frames = [_with_run_keys(run.steps.copy(), run) for run in runs]
        return cls(_concat(eval_frames), _concat(step_frames))

    @classmethod
    def from_csv(cls, path: Path | str) -> RunTable:
        """A law-style CSV: columns N, L, at least one of C/D/T, optionally run, step, eval_set.

        Missing `run` -> one run per N (label `N<size>`); missing `step` -> NaN.
        Also reads back what `to_csv` wrote.
        """
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError) as error:  # pandas parse errors are ValueErrors
            raise DataError(f"cannot read CSV: {error}", path=path) from error
        for column in ("N", "L"):
            if column not in df.columns:
                raise DataError("missing column", path=path, field=column)
        if not any(column in df.columns for column in ("C", "D", "T")):
            raise DataError("needs at least one of the columns C, D, T", path=path, field="C")
        for column in ("N", "L", "C", "D", "T", "step"):
            if column in df.columns:
                df[column] = _numeric_column(df[column], path, column,
                                             required=column in ("N", "L"))
        _check_ranges(df, path)
        if "run" not in df.columns:
            df["run"] = ["N" + short_count(n) for n in df["N"]]
        df["run"] = df["run"].astype(str)
        if "step" not in df.columns:
            df["step"] = np.nan
        return cls(df)

    # --- views -----------------------------------------------------------------------------

    def law_table(self, eval_set: str | None = None) -> pd.DataFrame:
        """DataFrame[N, run, step, C, D, T, L] for one eval set, sorted by N, run, step.

        eval_set None: each run's primary set (meta `primary_eval`, else its first eval set);
        all runs must agree on it, else name one.
        """
        rows = self.df
        if rows.empty:
            raise RunLogError("no eval records: the runs have nothing to fit")
        if "eval_set" in rows.columns and rows["eval_set"].notna().any():
            chosen = self._chosen_sets(eval_set)
            rows = rows[rows["eval_set"] == rows["run"].map(chosen)]
        missing_n = sorted(rows.loc[rows["N"].isna(), "run"].unique()) if "N" in rows else ["all"]
        if missing_n:
            raise RunLogError(f"runs without a model size N in meta.json: {missing_n}")
        table = rows.reindex(columns=LAW_COLUMNS)
        return table.sort_values(["N", "run", "step"], kind="stable").reset_index(drop=True)

    def _chosen_sets(self, eval_set: str | None) -> dict[str, str]:
        """The eval set to use for each run."""
        df = self.df.dropna(subset=["eval_set"])
        available = {run: list(dict.fromkeys(group["eval_set"])) for run, group in
                     df.groupby("run", sort=False)}
        if eval_set is not None:
            lacking = sorted(run for run, sets in available.items() if eval_set not in sets)
            if lacking:
                sets = sorted({s for sets in available.values() for s in sets})
                raise RunLogError(
                    f"eval set '{eval_set}' is missing from runs {lacking}; sets present: {sets}"
                )
            return dict.fromkeys(available, eval_set)
        chosen = {}
        for run, sets in available.items():
            primary = self._primary_eval(run) or sets[0]
            if primary not in sets:
                raise RunLogError(
                    f"run '{run}': its primary_eval '{primary}' has no records; sets: {sets}"
                )
            chosen[run] = primary
        if len(set(chosen.values())) > 1:
            common = sorted(set.intersection(*(set(sets) for sets in available.values())))
            raise RunLogError(
                f"runs disagree on their primary eval set ({chosen}); pass eval_set= one of "
                f"the sets all runs have: {common}"
            )
        return chosen

    def _primary_eval(self, run: str) -> str | None:
        if "primary_eval" not in self.df.columns:
            return None
        values = self.df.loc[self.df["run"] == run, "primary_eval"].dropna()
        return str(values.iloc[0]) if len(values) else None

    def to_csv(self, path: Path | str) -> None:
        """Write `df` atomically (readable again with `RunTable.from_csv`)."""
        atomic_write_text(path, self.df.to_csv(index=False))


def _numeric_column(values: pd.Series, path, column: str, *, required: bool) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() if required else numbers.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[row]
        problem = "missing value" if pd.isna(value) else f"not a number: {value!r}"
        raise DataError(problem, path=path, line=row + 2, field=column)  # the header is line 1
    return numbers


# The values a law table may hold: what the laws need (log10 of N, X and L exist).
_RANGES = {"N": (0, False, "a positive number"), "L": (0, True, "a number in (0, 1]"),
           "C": (0, False, "a finite number > 0"), "D": (0, False, "a finite number > 0"),
           "T": (0, False, "a finite number > 0"), "step": (0, True, "an integer >= 0")}


def _check_ranges(df: pd.DataFrame, path) -> None:
    """Every present value finite and in its range, checked in file order (so the line named
    is the first bad one the file holds). Step 0 may have C = D = T = 0 (nothing consumed yet)."""
    at_start = df["step"] == 0 if "step" in df.columns else pd.Series(False, index=df.index)
    for column, (low, low_ok, what) in _RANGES.items():
        if column not in df.columns:
            continue
        values = df[column]
        present = values.notna()
        finite = np.isfinite(values.where(present, 0.0))
        above = (values >= low) if low_ok else (values > low)
        if column in ("C", "D", "T"):
            above = above | (at_start & (values == 0))
        ok = ~present | (finite & above)
        if column == "L":
            ok &= ~present | (values <= 1)
        if column == "step":
            ok &= ~present | (values % 1 == 0)
        if not ok.all():
            row = int(np.flatnonzero(~ok.to_numpy())[0])
            raise DataError(f"must be {what}, got {float(values.iloc[row])!r}", path=path,
                            line=row + 2, field=column)


def _with_run_keys(frame: pd.DataFrame, run: Run) -> pd.DataFrame:
    keys = {"run": _run_label(run), **{key: _cell(run.meta.get(key)) for key in RUN_KEYS}}
    keys["run_id"] = run.run_id
    keys["primary_eval"] = _cell(run.meta.get("primary_eval"))
    key_frame = pd.DataFrame({key: [value] * len(frame) for key, value in keys.items()},
                             index=frame.index)
    return pd.concat([key_frame, frame.drop(columns=list(keys), errors="ignore")], axis=1)


def _eval_rows(run: Run) -> pd.DataFrame:
    evals = run.evals.copy()
    for column in EVAL_COLUMNS:
        if column not in evals.columns:
            evals[column] = np.nan
    no_loss = evals["L"].isna() & evals["pass1"].notna()
    evals.loc[no_loss, "L"] = 1.0 - evals.loc[no_loss, "pass1"]
    first = ["step", *EVAL_COLUMNS]
    evals = evals[first + [column for column in evals.columns if column not in first]]
    merged = evals.merge(run.steps, on="step", how="left", suffixes=("_eval", ""))
    at_start = merged["step"] == 0
    for column in CUMULATIVE:
        if column not in merged.columns:
            merged[column] = np.nan
    for column in (*CUMULATIVE, *CUMULATIVE_EXTRA):
        if column in merged.columns:
            merged.loc[at_start & merged[column].isna(), column] = 0
    return _with_run_keys(merged, run)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [frame for frame in frames if not frame.empty] or frames[:1]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
