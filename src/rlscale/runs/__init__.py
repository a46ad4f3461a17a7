"""The run log: one directory per run (meta.json, steps.jsonl, evals.jsonl), its reader, the
RunTable the laws take, and importers for runs made elsewhere. Format: docs/run-format.md, typed
as `RunMeta`, `StepRecord` and `EvalRecord` (rlscale.runs.schema)."""

from rlscale.runs.log import RunWriter, atomic_write_text
from rlscale.runs.read import (
    Run,
    TruncatedRecordWarning,
    find_runs,
    read_jsonl,
    read_records,
    read_run,
)
from rlscale.runs.schema import TIMING_FIELDS, EvalRecord, RunMeta, StepRecord
from rlscale.runs.table import LAW_COLUMNS, RUN_KEYS, RunTable

__all__ = [
    "LAW_COLUMNS",
    "RUN_KEYS",
    "TIMING_FIELDS",
    "EvalRecord",
    "Run",
    "RunMeta",
    "RunTable",
    "RunWriter",
    "StepRecord",
    "TruncatedRecordWarning",
    "atomic_write_text",
    "find_runs",
    "read_jsonl",
    "read_records",
    "read_run",
]
