"""Bring runs made elsewhere into the run format: long CSV tables, W&B history exports, VeRL logs.

Each importer writes ordinary run directories (`<out>/<experiment>/<run_id>/`) with RunWriter,
so the analysis side never knows where a run came from. docs/run-format.md ("Importing") has the
options; derived fields: `C = 6 N T` when T is known and C is not, `D = step x prompts_per_step`
when that option is given and D is not, `pass1 = 1 - L` (or the reverse).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rlscale.errors import DataError
from rlscale.runs.log import RunWriter, utc_now
from rlscale.runs.names import safe_name
from rlscale.runs.schema import RUN_KEYS, EvalRecord, Record, RunMeta, StepRecord
from rlscale.runs.table import short_count
from rlscale.units import training_flops

# The importers emit the run format's models (rlscale.runs.schema); the field lists come from it.
# Run-level keys a CSV may carry as columns (RunTable's run keys but the ids the importer sets);
# they go to meta.json, not to the step records.
META_COLUMNS = tuple(key for key in RUN_KEYS if key not in ("run_id", "experiment"))
# Eval-record fields a table row may carry (those a step record does not also have).
EVAL_FIELDS = tuple(name for name in EvalRecord.model_fields
                    if name not in StepRecord.model_fields and name != "eval_set")
# Fields that must hold numbers, checked cell by cell (naming the line) before anything is written.
NUMERIC_FIELDS = tuple(dict.fromkeys(
    name for model in (RunMeta, StepRecord, EvalRecord) for name in model.model_fields
    if model.type_name(name).split(" ")[0] in ("int", "count", "number")))

# VeRL's metric names (as its console/file loggers and W&B show them) for the step fields the
# rlscale trainer writes (docs/run-format.md). Applied to W&B and VeRL imports where the column
# exists and the user did not map the field.
VERL_METRICS = {
    "reward": "critic/score/mean",
    "response_len": "response_length/mean",
    "response_len_max": "response_length/max",
    "policy_loss": "actor/pg_loss",
    "kl": "actor/kl_loss",
    "entropy": "actor/entropy",
    "clip_frac": "actor/pg_clipfrac",
    "lr": "actor/lr",
    "grad_norm": "actor/grad_norm",
    "epoch": "training/epoch",
    "tokens": "perf/total_num_tokens",  # the step's prompt + response tokens
    "T": "perf/total_num_tokens:cumsum",
    "time_step": "timing_s/step",
    "time_generation": "timing_s/gen",
}
# VeRL's validation metrics: old `val/test_score/<data_source>`, new
# `val-core/<data_source>/<acc|reward>/mean@<n>`; both are the mean 0/1 score, i.e. pass@1.
_VERL_OLD_EVAL = re.compile(r"^val/test_score/(?P<set>.+)$")
_VERL_NEW_EVAL = re.compile(r"^val-core/(?P<set>.+)/(?P<var>acc|reward|score)/mean@(?P<n>\d+)$")
_CONSOLE_LINE = re.compile(r"(?:^|\s)step:(?P<step>\d+)(?P<rest>(?: - .*)?)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ColumnMap:
    """One `FIELD=COLUMN[:TRANSFORM]` option: where a run-format field comes from.

    TRANSFORM: `1-` (one minus the value, e.g. L from a score), `cumsum` (cumulative sum, e.g.
    T from per-step tokens) or `*K` (times the number K).
    """

    field: str
    column: str
    transform: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        field, sep, source = spec.partition("=")
        if not sep or not field.strip() or not source.strip():
            raise DataError(f"mapping '{spec}' is not FIELD=COLUMN[:TRANSFORM]", field="--map")
        column, transform = source, None
        head, colon, tail = source.rpartition(":")
        if colon and (tail in ("1-", "cumsum") or tail.startswith("*")):
            column, transform = head, tail
        mapping = cls(field.strip(), column.strip(), transform)
        if transform and transform.startswith("*"):
            mapping._factor()
        return mapping

    def _factor(self) -> float:
        try:
            return float(self.transform[1:])
        except ValueError as error:
            raise DataError(f"bad transform '{self.transform}' (want *NUMBER)",
                            field="--map") from error

    def apply(self, values: pd.Series) -> pd.Series:
        values = pd.to_numeric(values, errors="coerce")
        if self.transform == "1-":
            return 1.0 - values
        if self.transform == "cumsum":
            return values.cumsum()
        if self.transform:
            return values * self._factor()
        return values


def parse_count(text: str | float) -> float:
    """'7B', '1.5e9', '500M', '0.25M' -> a number (model sizes on the command line)."""
    if isinstance(text, int | float):
        return float(text)
    scales = {"K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
    cleaned = str(text).strip().upper()
    factor = scales.get(cleaned[-1:], 1.0)
    try:
        return float(cleaned[:-1] if cleaned[-1:] in scales else cleaned) * factor
    except ValueError as error:
        raise DataError(f"not a parameter count: {text!r} (e.g. 7e9 or 7B)", field="--n") from error


# --- the three importers ------------------------------------------------------------------


def import_csv(src: Path | str, out_root: Path | str, *, experiment: str, n: float | None = None,
               mapping: Iterable[str | ColumnMap] = (), eval_set: str = "test",
               prompts_per_step: float | None = None) -> list[Path]:
    """A long table, one row per (run, step): `step`, `N` (or n=), `L` and/or `pass1`, any of the
    step fields (D, T, C, reward, ...; other columns are kept under their own names), an
    optional `eval_set` column, and `run` (without it, one run per combination of META_COLUMNS
    present, e.g. per N). Returns the run directories written.
    """
    src = Path(src)
    table = _apply_mapping(_read_csv(src), _mappings(mapping), src)
    if n is not None:
        table["N"] = n
    for required in ("step", "N"):
        if required not in table.columns:
            hint = " (or pass --n)" if required == "N" else ""
            raise DataError(f"missing column{hint}", path=src, field=required)
    if "L" not in table.columns and "pass1" not in table.columns:
        raise DataError("missing column (L or pass1)", path=src, field="L")
    table["step"] = _steps(table["step"], src)
    if "eval_set" not in table.columns:
        table["eval_set"] = eval_set
    table["_line"] = np.arange(2, len(table) + 2)  # the file's line of each row (header: 1)

    _check_values(table, src)
    safe_name(experiment, field="--experiment")
    group_keys = ["run"] if "run" in table.columns else [c for c in META_COLUMNS if c in table]
    prepared = []  # every run is checked before any is written: no half-imported tables
    for key, rows in table.groupby(group_keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        meta = _constant_meta(rows, src)
        keys = dict(zip(group_keys, key, strict=True))
        run_id = str(keys["run"]) if "run" in keys else _label(keys)
        safe_name(run_id, field="run", path=src, line=int(rows["_line"].iloc[0]))
        step_columns = [c for c in rows.columns if c not in
                        ("run", "eval_set", "_line", *META_COLUMNS, *EVAL_FIELDS)]
        steps = rows[step_columns].groupby("step", sort=True).first().reset_index()
        evals = rows[["_line", "step", "eval_set", *[c for c in EVAL_FIELDS if c in rows]]]
        duplicated = evals.duplicated(["step", "eval_set"])
        if duplicated.any():
            line = evals.loc[duplicated, "_line"].iloc[0]
            raise DataError(f"run '{run_id}' has step {evals.loc[duplicated, 'step'].iloc[0]} "
                            "twice", path=src, line=int(line), field="step")
        evals = evals.drop(columns="_line").sort_values("step", kind="stable")
        prepared.append(_prepare_run(out_root, experiment, run_id, meta, steps, evals,
                                     source={"format": "csv", "path": str(src)},
                                     prompts_per_step=prompts_per_step))
    return [_write_run(run) for run in prepared]


def import_wandb(src: Path | str, out_root: Path | str, *, experiment: str, n: float,
                 run_id: str | None = None, mapping: Iterable[str | ColumnMap] = (),
                 eval_set: str = "test", prompts_per_step: float | None = None) -> Path:
    """A W&B run-history CSV (`run.history()` or the UI's history export): a `_step` column (or
    `step=COLUMN` in `mapping`) and one column per metric; rows of one step are combined (last
    value wins). VeRL names map by default (VERL_METRICS, val/test_score/*); `mapping` adds or
    overrides fields.
    """
    src = _require_size(src, n)
    table = _read_csv(src)
    maps = _mappings(mapping)
    # `_step` is W&B's own counter; VeRL logs its training step there, other trainers may not.
    step_column = next((m.column for m in maps if m.field == "step"), "_step")
    if step_column not in table.columns:
        raise DataError("missing column (the step; map another with --map step=COLUMN)",
                        path=src, field=step_column)
    table = table.dropna(subset=[step_column])
    table[step_column] = _steps(table[step_column], src)
    history = table.groupby(step_column, sort=True).last()  # the last value at a step wins
    history = history.drop(columns=["step"], errors="ignore")
    mapping = [m for m in maps if m.field != "step"]
    defaults = dict(VERL_METRICS)
    if "_runtime" in history.columns:
        defaults["wall_time"] = "_runtime"
    return _import_history(history, src, "wandb", defaults, out_root=out_root,
                           experiment=experiment, n=n, run_id=run_id, mapping=mapping,
                           eval_set=eval_set, prompts_per_step=prompts_per_step)


def import_verl(src: Path | str, out_root: Path | str, *, experiment: str, n: float,
                run_id: str | None = None, mapping: Iterable[str | ColumnMap] = (),
                eval_set: str = "test", prompts_per_step: float | None = None) -> Path:
    """A VeRL training log: console lines `step:N - key:value - ...` (other lines are ignored)
    and/or VeRL file-logger JSONL lines `{"step": N, "data": {...}}`. Console values carry the
    3 decimals VeRL prints; prefer the file logger's JSONL where you have it.
    """
    src = _require_size(src, n)
    history = parse_verl_log(src)
    return _import_history(history, src, "verl", dict(VERL_METRICS), out_root=out_root,
                           experiment=experiment, n=n, run_id=run_id, mapping=mapping,
                           eval_set=eval_set, prompts_per_step=prompts_per_step)


def parse_verl_log(path: Path | str) -> pd.DataFrame:
    """Metrics of a VeRL log as a DataFrame indexed by step, one column per metric name."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    by_step: dict[int, dict[str, float]] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, raw in enumerate(lines, 1):
            line = _ANSI.sub("", raw).strip()
            if line.startswith("{"):
                step, metrics = _file_logger_record(line, path, number)
            else:
                step, metrics = _console_record(line, path, number)
            if step is not None:
                by_step.setdefault(step, {}).update(metrics)
    if not by_step:
        raise DataError("no VeRL metric lines (`step:N - key:value ...` or JSONL)", path=path)
    history = pd.DataFrame.from_dict(by_step, orient="index").sort_index()
    history.index.name = "step"
    return history


def _file_logger_record(line: str, path: Path, number: int) -> tuple[int | None, dict]:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None, {}  # a JSON-looking line that is not one of VeRL's records
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        return None, {}
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int | float) or not math.isfinite(step) \
            or step < 0 or step != int(step):
        raise DataError(f"step must be an integer >= 0, got {step!r}", path=path, line=number,
                        field="step")
    numbers = {key: float(value) for key, value in record["data"].items()
               if isinstance(value, int | float) and not isinstance(value, bool)}
    return int(step), numbers


def _console_record(line: str, path: Path, number: int) -> tuple[int | None, dict]:
    match = _CONSOLE_LINE.search(line)
    if not match:
        return None, {}
    metrics = {}
    for item in match["rest"].split(" - ")[1:]:
        key, sep, value = item.rpartition(":")
        try:
            metrics[key.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise DataError(f"not a `key:number` item: {item!r}", path=path, line=number,
                            field=key.strip() or None)
    return int(match["step"]), metrics


# --- shared machinery ---------------------------------------------------------------------


def _import_history(history: pd.DataFrame, src: Path, source_format: str,
                    defaults: dict[str, str], *, out_root, experiment, n, run_id, mapping,
                    eval_set, prompts_per_step) -> Path:
    """A metric history (index step, columns metric names) -> one run directory."""
    user = _mappings(mapping)
    mapped = {m.field for m in user}
    maps = [m for field, spec in defaults.items() if field not in mapped
            for m in [ColumnMap.parse(f"{field}={spec}")] if m.column in history.columns]
    fields = _apply_mapping(history.reset_index(names="step"), maps + user, src)
    evals = _history_evals(fields, history, eval_set, user_mapped=bool(mapped & {"L", "pass1"}),
                           src=src)
    # Other mapped eval fields (n_problems, stderr, ...) join the evaluations of their step.
    eval_extra = list(dict.fromkeys(m.field for m in maps + user
                                    if m.field in EVAL_FIELDS and m.field not in ("pass1", "L")))
    if eval_extra:
        evals = evals.merge(fields[["step", *eval_extra]], on="step", how="left")
    step_fields = [m.field for m in maps + user if m.field not in EVAL_FIELDS]
    steps = fields[["step", *dict.fromkeys(step_fields)]]
    # A row is a training step when it has a step field besides the clock (W&B stamps every row).
    evidence = [field for field in step_fields if field != "wall_time"]
    steps = steps[steps[evidence].notna().any(axis=1)] if evidence else steps.iloc[:0]
    meta = {"N": float(n)}
    return _write_run(_prepare_run(out_root, experiment, run_id or src.stem, meta, steps, evals,
                                   source={"format": source_format, "path": str(src)},
                                   prompts_per_step=prompts_per_step))


def _history_evals(fields: pd.DataFrame, history: pd.DataFrame, eval_set: str, *,
                   user_mapped: bool, src: Path) -> pd.DataFrame:
    """Long eval rows (step, eval_set, pass1/L) from the mapped fields or VeRL's val metrics."""
    if user_mapped:
        columns = ["step", *[c for c in ("pass1", "L") if c in fields]]
        evals = fields[columns].assign(eval_set=eval_set)
        return evals.dropna(subset=columns[1:], how="all")
    candidates: dict[str, list[tuple[int, str]]] = {}  # eval set -> [(preference, column)]
    for column in history.columns:
        old, new = _VERL_OLD_EVAL.match(column), _VERL_NEW_EVAL.match(column)
        if new:  # prefer acc over reward, then the most samples per problem
            rank, name = (1 if new["var"] == "acc" else 0) * 10**6 + int(new["n"]), new["set"]
        elif old:
            rank, name = -1, old["set"]
        else:
            continue
        candidates.setdefault(name, []).append((rank, column))
    if not candidates:
        raise DataError("no eval metric found (val/test_score/* or val-core/*/acc/mean@*); "
                        "map one with --map L=COLUMN:1- or --map pass1=COLUMN", path=src,
                        field="L")
    frames = []
    for name, columns in candidates.items():
        # At each step, the most preferred metric that was logged there.
        ranked = [pd.to_numeric(history[column], errors="coerce")
                  for _, column in sorted(columns, reverse=True)]
        pass1 = ranked[0]
        for fallback in ranked[1:]:
            pass1 = pass1.combine_first(fallback)
        frames.append(pd.DataFrame({"step": history.index, "eval_set": name,
                                    "pass1": pass1.to_numpy()}))
    return pd.concat(frames, ignore_index=True).dropna(subset=["pass1"])


def _require_size(src: Path | str, n: float | None) -> Path:
    if n is None:
        raise DataError("the model size is not in this format; pass --n", path=src, field="N")
    _check_size(n, field="--n")
    return Path(src)


def _check_size(n, *, field: str) -> float:
    if isinstance(n, bool) or not isinstance(n, int | float) or not math.isfinite(n) or n <= 0:
        raise DataError(f"a model size must be a positive number, got {n!r}", field=field)
    return float(n)


def _check_values(table: pd.DataFrame, src: Path) -> None:
    """Numbers where numbers belong, before anything is written: N a positive size; L and pass1
    in [0, 1]; the counted and cumulative step fields finite and >= 0."""
    def bad_line(mask) -> int:
        return int(table.loc[mask, "_line"].iloc[0])

    def shown(mask, field):
        value = table.loc[mask, field].iloc[0]
        return repr(value.item() if hasattr(value, "item") else value)

    if "N" in table:
        sizes = pd.to_numeric(table["N"], errors="coerce")
        bad = sizes.isna() | ~np.isfinite(sizes) | (sizes <= 0)
        if bad.any():
            raise DataError(f"a model size must be a positive number, got {shown(bad, 'N')}",
                            path=src, line=bad_line(bad), field="N")
        table["N"] = sizes
    for field in ("L", "pass1"):
        if field not in table:
            continue
        values = pd.to_numeric(table[field], errors="coerce")
        bad = (values.isna() & table[field].notna()) | (values < 0) | (values > 1)
        if bad.any():
            raise DataError(f"must be a number in [0, 1], got {shown(bad, field)}", path=src,
                            line=bad_line(bad), field=field)
        table[field] = values
    for field in ("D", "D_unique", "T", "C", "tokens", "flops"):
        if field not in table:
            continue
        values = pd.to_numeric(table[field], errors="coerce")
        bad = (values.isna() & table[field].notna()) | ~np.isfinite(values.fillna(0)) | (values < 0)
        if bad.any():
            raise DataError(f"must be a finite number >= 0, got {shown(bad, field)}", path=src,
                            line=bad_line(bad), field=field)
        table[field] = values
    checked = ("step", "N", "L", "pass1", "D", "D_unique", "T", "C", "tokens", "flops")
    for field in NUMERIC_FIELDS:  # any other run-format number: a number (NaN: not logged)
        if field in checked or field not in table:
            continue
        values = pd.to_numeric(table[field], errors="coerce")
        bad = values.isna() & table[field].notna()
        if bad.any():
            raise DataError(f"must be a number, got {shown(bad, field)}", path=src,
                            line=bad_line(bad), field=field)
        table[field] = values


@dataclass
class _PreparedRun:
    """One run as the run format's models, checked and ready to write."""

    run_dir: Path
    meta: RunMeta
    steps: list[StepRecord]
    evals: list[EvalRecord]


def _prepare_run(out_root, experiment: str, run_id: str, meta: dict, steps: pd.DataFrame,
                 evals: pd.DataFrame, *, source: dict, prompts_per_step: float | None
                 ) -> _PreparedRun:
    """One run's records from a steps frame and a long evals frame (NaN = field absent),
    validated against the run format (DataError naming the source file and field)."""
    steps = steps.copy()
    n = meta.get("N")
    if "C" not in steps and "T" in steps and n is not None:
        steps["C"] = training_flops(n, steps["T"])  # the paper's compute, C = 6 N T
    if "D" not in steps and prompts_per_step:
        steps["D"] = steps["step"] * prompts_per_step
    measured = [column for column in steps.columns if column != "step"]
    steps = steps[steps[measured].notna().any(axis=1)] if measured else steps.iloc[:0]
    evals = evals.copy()
    if "pass1" not in evals and "L" in evals:
        evals["pass1"] = 1.0 - evals["L"]
    if "L" not in evals:
        evals["L"] = 1.0 - evals["pass1"]
    evals["pass1"] = evals["pass1"].fillna(1.0 - evals["L"])
    evals = evals.dropna(subset=["pass1"])  # rows of the table that carry no evaluation
    for field in ("pass1", "L"):
        values = pd.to_numeric(evals[field], errors="coerce")
        bad = values.isna() | (values < 0) | (values > 1)
        if bad.any():
            step = evals.loc[bad, "step"].iloc[0]
            raise DataError(f"must be a number in [0, 1], got {evals.loc[bad, field].iloc[0]!r} "
                            f"at step {step}", path=source.get("path"), field=field)
    primary = str(evals["eval_set"].iloc[0]) if len(evals) else None
    evals = evals.sort_values("step", kind="stable")
    safe_name(experiment, field="--experiment")
    safe_name(run_id, field="--run-id")
    meta = {"run_id": run_id, "experiment": experiment, **meta, "primary_eval": primary,
            "imported": {**source, "at": utc_now()}}
    if prompts_per_step:
        meta["prompts_per_step"] = prompts_per_step
    path = source.get("path")
    return _PreparedRun(
        run_dir=Path(out_root) / experiment / run_id,
        meta=RunMeta.from_record(_integral(meta, RunMeta), path=path),
        steps=_records(steps, StepRecord, path), evals=_records(evals, EvalRecord, path))


def _write_run(run: _PreparedRun) -> Path:
    """Write one prepared run directory."""
    with RunWriter(run.run_dir, run.meta) as writer:
        for record in run.steps:
            writer.log_step(record)
        for record in run.evals:
            writer.log_eval(record)
    return run.run_dir


def _records(frame: pd.DataFrame, model: type[Record], path) -> list:
    """Rows as `model` records: NaN cells dropped, numpy as Python, integral counts as ints."""
    records = []
    for row in frame.to_dict(orient="records"):
        record = {}
        for key, value in row.items():
            if value is None or isinstance(value, float) and np.isnan(value):
                continue
            record[key] = value.item() if hasattr(value, "item") else value
        records.append(model.from_record(_integral(record, model), path=path))
    return records


def _integral(record: dict, model: type[Record]) -> dict:
    """Integral floats of the model's integer fields (`int`, `count`) as ints (7.0 -> 7)."""
    integers = model.integer_fields()
    return {key: int(value) if key in integers and isinstance(value, float)
            and value.is_integer() else value for key, value in record.items()}


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read CSV: {error}", path=path) from error


def _mappings(specs: Iterable[str | ColumnMap]) -> list[ColumnMap]:
    return [spec if isinstance(spec, ColumnMap) else ColumnMap.parse(spec) for spec in specs]


def _apply_mapping(table: pd.DataFrame, maps: list[ColumnMap], src: Path) -> pd.DataFrame:
    table = table.copy()
    for mapping in maps:
        if mapping.column not in table.columns:
            shown = ", ".join(map(str, list(table.columns)[:20]))
            raise DataError(f"mapped column '{mapping.column}' not found (columns: {shown}...)",
                            path=src, field=mapping.field)
        table[mapping.field] = mapping.apply(table[mapping.column])
    # A mapped source column is now a field under its run-format name; don't keep both.
    sources = {m.column for m in maps} - {m.field for m in maps} - {"step", "run"}
    return table.drop(columns=list(sources))


def _steps(values: pd.Series, src: Path) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna() | (numbers < 0) | (numbers % 1 != 0)
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[position]
        # read_csv numbers rows from 0 in file order; the header is line 1
        raise DataError(f"step must be an integer >= 0, got "
                        f"{value.item() if hasattr(value, 'item') else value!r}", path=src,
                        line=int(values.index[position]) + 2, field=str(values.name))
    return numbers.astype("int64")


def _constant_meta(rows: pd.DataFrame, src: Path) -> dict:
    meta = {}
    for column in META_COLUMNS:
        if column not in rows:
            continue
        values = rows[column].dropna().unique()
        if len(values) > 1:
            raise DataError(f"differs within one run: {list(values)[:5]}", path=src,
                            line=int(rows["_line"].iloc[0]), field=column)
        if len(values):
            meta[column] = values[0].item() if hasattr(values[0], "item") else values[0]
    return meta


def _label(keys: dict) -> str:
    """A run id from its key columns, e.g. {'N': 7e9, 'tau': 20} -> 'N7B-tau20'."""
    parts = []
    for column, value in keys.items():
        if column in ("N", "N_total", "N_nonembed") and isinstance(value, int | float):
            parts.append(f"{column}{short_count(value)}")
        else:
            parts.append(f"{column}{value:g}" if isinstance(value, float) else f"{column}{value}")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", "-".join(parts))
