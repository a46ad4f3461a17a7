"""Read run directories back: tolerant of a crash's torn last line, strict about anything else.

`read_run` validates every record against the run format (rlscale.runs.schema): a record that
does not fit is a DataError naming the file, line and field.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rlscale.errors import RunLogError
from rlscale.runs.schema import (
    EVALS_FILE,
    META_FILE,
    STEPS_FILE,
    EvalRecord,
    Record,
    RunMeta,
    StepRecord,
    parse_json_line,
)

__all__ = ["EVALS_FILE", "META_FILE", "STEPS_FILE", "Run", "TruncatedRecordWarning",
           "find_runs", "read_jsonl", "read_meta", "read_records", "read_run", "split_records"]


class TruncatedRecordWarning(UserWarning):
    """A log's last line was cut short (a crash mid-write); it was skipped."""


def split_records(path: Path | str) -> tuple[list[tuple[int, bytes]], int | None]:
    """The committed lines of a JSONL log as (line number, bytes), and the torn line's number.

    A line is committed once its newline is written. The last line is torn when it has no
    newline, or when it has one but is not valid JSON (a file system can extend a file before
    its data lands). Blank lines are ignored. Lines in the middle are returned unchecked.
    """
    path = Path(path)
    if not path.exists():
        return [], None
    pieces = path.read_bytes().split(b"\n")
    tail = pieces.pop()  # b"" when the file ends with a newline
    lines = [(number, line) for number, line in enumerate(pieces, 1) if line.strip()]
    if tail.strip():
        return lines, len(pieces) + 1
    if lines and _parse(lines[-1][1]) is None:
        return lines[:-1], lines[-1][0]
    return lines, None


def _parse(line: bytes) -> dict | None:
    """A line as a JSON object, or None when it is not one."""
    try:
        record = json.loads(line)
    except ValueError:  # includes UnicodeDecodeError
        return None
    return record if isinstance(record, dict) else None


def read_jsonl(path: Path | str) -> list[dict]:
    """Every record of a run log, in order (empty if the file does not exist).

    Skips a torn last line with a TruncatedRecordWarning; a corrupt line anywhere else raises
    RunLogError naming the file and line number. NaN/Infinity tokens read back as floats.
    """
    return [record for _, record in _committed(path)]


def read_records(path: Path | str, model: type[Record]) -> list[dict]:
    """`read_jsonl`, each record validated by `model` (StepRecord, EvalRecord): a record that does
    not fit raises DataError naming the file, line and field. Returns the records as written."""
    records = []
    for number, record in _committed(path):
        model.from_record(record, path=path, line=number)
        records.append(record)
    return records


def _committed(path: Path | str) -> list[tuple[int, dict]]:
    """(line number, record) of every committed line; a torn last line is warned about."""
    lines, torn = split_records(path)
    if torn is not None:
        warnings.warn(
            f"{path}: skipped the truncated last line {torn} (a crash while writing it)",
            TruncatedRecordWarning,
            stacklevel=3,
        )
    return [(number, parse_json_line(line, path=path, line_number=number))
            for number, line in lines]


def read_meta(run_dir: Path | str) -> dict:
    """A run's meta.json as a dict, validated by RunMeta (DataError naming the file and key)."""
    path = Path(run_dir) / META_FILE
    if not path.is_file():
        raise RunLogError(f"{run_dir}: not a run directory (no {META_FILE})")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RunLogError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(meta, dict):
        raise RunLogError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    RunMeta.from_record(meta, path=path)
    return meta


@dataclass
class Run:
    """One run directory read back: meta.json as a dict and each log as a DataFrame."""

    path: Path
    meta: dict
    steps: pd.DataFrame
    evals: pd.DataFrame

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id") or self.path.name)


def _frame(records: list[dict]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    return pd.DataFrame.from_records(records)


def read_run(run_dir: Path | str) -> Run:
    """Read `meta.json`, `steps.jsonl` and `evals.jsonl` of one run, each validated against the
    run format (RunMeta, StepRecord, EvalRecord)."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    steps = _frame(read_records(run_dir / STEPS_FILE, StepRecord))
    evals = _frame(read_records(run_dir / EVALS_FILE, EvalRecord))
    return Run(path=run_dir, meta=meta, steps=steps, evals=evals)


def find_runs(root: Path | str | Iterable[Path | str]) -> list[Path]:
    """Every directory holding a meta.json under `root` (itself included), sorted, no repeats."""
    roots = [root] if isinstance(root, str | Path) else list(root)
    found: set[Path] = set()
    for one in roots:
        one = Path(one)
        if not one.exists():
            raise RunLogError(f"{one}: no such file or directory")
        found.update(meta.parent for meta in one.rglob(META_FILE) if meta.is_file())
        if (one / META_FILE).is_file():
            found.add(one)
    return sorted(found)
