"""Write a run directory: `meta.json` (atomic) and append-only `steps.jsonl` / `evals.jsonl`.

Crash semantics (docs/run-format.md): a record is committed once its line, newline included, is
fsynced; `meta.json` is replaced atomically, so it is always either the old or the new version.
Non-finite floats are written as Python's `NaN` / `Infinity` / `-Infinity` tokens (json's
`allow_nan`), so they round-trip exactly through `rlscale.runs.read`. Records and meta are
validated against the run format (rlscale.runs.schema) before they are written: a wrong type is a
DataError naming the file and field.
"""

from __future__ import annotations

import json
import operator
import os
import platform
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from rlscale.errors import RunLogError
from rlscale.files import atomic_write_text, fsync_dir
from rlscale.runs.read import EVALS_FILE, META_FILE, STEPS_FILE, read_jsonl, split_records
from rlscale.runs.schema import FAILED, FINISHED, RUNNING, EvalRecord, RunMeta, StepRecord

CHECKPOINTS_DIR = "checkpoints"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string (what every timestamp in a run uses)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def software_versions() -> dict[str, str | None]:
    """Versions recorded in meta.json; read from package metadata so torch is not imported."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("torch", "transformers", "rlscale"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _jsonable(value: Any) -> Any:
    """json's fallback: numpy/torch scalars (anything with .item()) and paths."""
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def dump_record(record: dict, *, path: Path | str = "") -> str:
    """One record as one JSON line (no newline). Errors name the file and the offending key."""
    try:
        return json.dumps(record, default=_jsonable, allow_nan=True, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        for key, value in record.items():
            try:
                json.dumps(value, default=_jsonable, allow_nan=True)
            except (TypeError, ValueError):
                raise RunLogError(f"{path}: field '{key}' cannot be written: {error}") from error
        raise RunLogError(f"{path}: record cannot be written: {error}") from error


def _rewrite_lines(path: Path, lines: list[bytes]) -> None:
    atomic_write_text(path, "".join(line.decode("utf-8") + "\n" for line in lines))


class RunWriter:
    """Writes one run directory. Use as a context manager so a crash marks the run "failed".

    >>> with RunWriter("runs/demo/n1m-s0", {"experiment": "demo", "N": 1e6}) as run:
    ...     run.log_eval({"step": 0, "eval_set": "holdout", "pass1": 0.1, "n_problems": 100})
    ...     run.log_step({"step": 1, "D": 64, "T": 12000, "C": 7.2e10})
    """

    def __init__(self, run_dir: Path | str, meta: dict | RunMeta, *, resume: bool = False):
        if isinstance(meta, RunMeta):
            meta = meta.to_record()
        self.path = Path(run_dir)
        self.meta_path = self.path / META_FILE
        RunMeta.from_record(meta, path=self.meta_path)  # before anything is written
        self.steps_path = self.path / STEPS_FILE
        self.evals_path = self.path / EVALS_FILE
        now = utc_now()
        if self.meta_path.exists():
            if not resume:
                raise RunLogError(
                    f"{self.path}: a run already exists here (meta.json); pass resume=True to "
                    "continue it or choose another directory"
                )
            stale_keys = ("error", "finished")  # from the previous attempt's end
            previous = {k: v for k, v in self._read_meta().items() if k not in stale_keys}
            self.meta = {**previous, **meta, "status": RUNNING, "resumed": now}
            for log in (self.steps_path, self.evals_path):
                # A crash can leave half a line; appending after it would corrupt the middle.
                lines, torn = split_records(log)
                if torn is not None:
                    _rewrite_lines(log, [line for _, line in lines])
        else:
            logs = (self.steps_path, self.evals_path)
            stale = [log.name for log in logs if log.exists() and log.stat().st_size]
            if stale:
                raise RunLogError(f"{self.path}: logs {stale} exist without a meta.json; "
                                  "remove them or point the run elsewhere")
            self.path.mkdir(parents=True, exist_ok=True)
            self.meta = {"run_id": self.path.name, **meta, "status": RUNNING, "created": now}
        self.meta["versions"] = {**software_versions(), **dict(meta.get("versions") or {})}
        self.meta["updated"] = now
        atomic_write_text(self.meta_path, self._meta_text())
        self._closed = False
        self._open_logs()
        fsync_dir(self.path)

    # --- records ---------------------------------------------------------------------------

    def log_step(self, record: dict | StepRecord) -> None:
        """Append one training-step record; `step` must exceed every step already logged."""
        if isinstance(record, StepRecord):
            record = record.to_record()
        step = self._check_step(record, self.steps_path)
        if self._last_step is not None and step <= self._last_step:
            raise RunLogError(
                f"{self.steps_path}: step {step} is not after the last logged step "
                f"{self._last_step} (on resume, call truncate_after(step) first)"
            )
        StepRecord.from_record(record, path=self.steps_path)
        self._append(self._steps, record, self.steps_path)
        self._last_step = step

    def log_eval(self, record: dict | EvalRecord) -> None:
        """Append one evaluation record (`step`, `eval_set`, `pass1`; `L` = 1 - pass1 if absent)."""
        if isinstance(record, EvalRecord):
            record = record.to_record()
        step = self._check_step(record, self.evals_path)
        for key in EvalRecord.required_fields():  # step: checked above
            if key not in record:
                raise RunLogError(f"{self.evals_path}: eval record without '{key}'")
        key = (step, str(record["eval_set"]))
        if key in self._logged_evals:
            raise RunLogError(
                f"{self.evals_path}: eval set '{key[1]}' at step {step} is already logged"
            )
        checked = EvalRecord.from_record(record, path=self.evals_path)  # fills L = 1 - pass1
        if "L" not in record and checked.L is not None:
            record = {**record, "L": checked.L}
        self._append(self._evals, record, self.evals_path)
        self._logged_evals.add(key)

    def _check_step(self, record: dict, path: Path) -> int:
        if self._closed:
            raise RunLogError(f"{self.path}: the run is finished; no more records can be written")
        value = record.get("step")
        try:
            step = operator.index(value)  # int and numpy integers, not floats
        except TypeError:
            step = -1
        if isinstance(value, bool) or step < 0:
            raise RunLogError(f"{path}: field 'step' must be an integer >= 0, got {value!r}")
        return step

    @staticmethod
    def _append(handle, record: dict, path: Path) -> None:
        # One write per record, newline included: the newline is what commits the record.
        handle.write(dump_record(record, path=path) + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    # --- meta ------------------------------------------------------------------------------

    def update_meta(self, **fields: Any) -> None:
        """Merge `fields` into meta.json (atomic replace)."""
        RunMeta.from_record({**self.meta, **fields}, path=self.meta_path)
        self.meta.update(fields)
        self.meta["updated"] = utc_now()
        atomic_write_text(self.meta_path, self._meta_text())

    def _meta_text(self) -> str:
        try:
            return json.dumps(self.meta, indent=2, default=_jsonable, allow_nan=True) + "\n"
        except (TypeError, ValueError) as error:
            raise RunLogError(f"{self.meta_path}: meta cannot be written: {error}") from error

    def _read_meta(self) -> dict:
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise RunLogError(f"{self.meta_path}: not valid JSON ({error})") from error
        if not isinstance(meta, dict):
            raise RunLogError(f"{self.meta_path}: expected a JSON object")
        return meta

    # --- resume ----------------------------------------------------------------------------

    def truncate_after(self, step: int) -> None:
        """Drop every step and eval record with a step after `step` (atomic rewrite of each log).

        A resumed run calls this with its checkpoint's step so that no record is duplicated.
        """
        self._steps.close()
        self._evals.close()
        for log in (self.steps_path, self.evals_path):
            lines, _ = split_records(log)
            kept = [line for number, line in lines if self._line_step(line, log, number) <= step]
            _rewrite_lines(log, kept)
        self._open_logs()

    @staticmethod
    def _line_step(line: bytes, path: Path, number: int) -> int:
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError) as error:
            raise RunLogError(f"{path}: line {number} has no readable 'step'") from error

    def _open_logs(self) -> None:
        """(Re)open both logs for appending and note what they already hold."""
        self._steps = open(self.steps_path, "a", encoding="utf-8")  # noqa: SIM115 (finish closes)
        self._evals = open(self.evals_path, "a", encoding="utf-8")  # noqa: SIM115
        steps = [record["step"] for record in read_jsonl(self.steps_path) if "step" in record]
        self._last_step = max(steps) if steps else None
        self._logged_evals = {(record.get("step"), str(record.get("eval_set")))
                              for record in read_jsonl(self.evals_path)}

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        """Where the trainer keeps checkpoints: `<run_dir>/checkpoints/` (not created here)."""
        return self.path / CHECKPOINTS_DIR

    def finish(self, status: str = FINISHED, **fields: Any) -> None:
        """Close the logs and record the final status (and any extra meta fields)."""
        if not self._closed:
            self._steps.close()
            self._evals.close()
            self._closed = True
        self.update_meta(status=status, finished=utc_now(), **fields)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None:
            # Records are already on disk; only the status changes.
            self.finish(FAILED, error=f"{exc_type.__name__}: {exc}")
        elif not self._closed:
            self.finish()
