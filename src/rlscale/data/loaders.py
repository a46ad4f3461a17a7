"""Load problems from VeRL/guru parquet files, JSONL files and Hugging Face datasets.

All sources go through one record reader (`problem_from_record`), so a row means the same thing
whatever the container:

- prompt: ``prompt`` (text, or chat messages ``[{"role", "content"}]``), else ``question`` or
  ``problem``;
- answer: ``reward_model.ground_truth`` (VeRL), else ``answer`` or ``ground_truth``;
- pass rate: ``pass_rate``, else ``extra_info.<pass_rate_field>`` (guru: ``qwen2.5_7b_pass_rate``,
  the reference model the paper ordered by); null or NaN means unknown;
- id: ``id``, else ``extra_info.index``, else the row number;
- source: ``data_source`` or ``source``, else the file's stem;
- solution (optional): ``solution``, a canonical correct response;
- everything else goes to ``metadata`` (e.g. guru's ``extra_info`` with its other pass rates).

Rows are numbered from 0 in every container (as pandas and `datasets` index them); JSONL errors
also give the 1-based line number.
"""

import json
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rlscale.data.problem import Problem
from rlscale.errors import DataError
from rlscale.files import atomic_write_text

PASS_RATE_FIELD = "qwen2.5_7b_pass_rate"
PROMPT_FIELDS = ("prompt", "question", "problem")
ANSWER_FIELDS = ("reward_model", "answer", "ground_truth")  # reward_model holds ground_truth
_CONSUMED = {"id", "pass_rate", "data_source", "source", "metadata", "solution"}


def load_problems(
    source: str | Path,
    *,
    split: str | None = None,
    limit: int | None = None,
    pass_rate_field: str = PASS_RATE_FIELD,
) -> list[Problem]:
    """Problems from a ``.parquet`` or ``.jsonl`` file, a saved HF dataset directory, or a hub name.

    split: for a dataset, which split to read (needed when it has several); for a file, keep only
    rows whose split (``extra_info.split`` or ``split``) equals it.
    limit: keep the first `limit` problems (after the split filter).
    """
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}", path=source, field="limit")
    path = Path(source)
    is_file = path.suffix in (".parquet", ".jsonl") and not path.is_dir()
    if path.is_dir():
        records = _dataset_records(_load_from_disk(path, split), path)
    elif path.suffix == ".parquet":
        records = _parquet_records(path)
    elif path.suffix == ".jsonl":
        records = _jsonl_records(path)
    elif path.exists():
        raise DataError(
            "unsupported file type (expected .parquet, .jsonl or a dataset directory)", path=path
        )
    else:
        records = _dataset_records(_load_from_hub(str(source), split), source)
    file_split = split if is_file else None
    name = path if path.exists() else source
    problems, seen = [], {}
    for row, record in records:
        if limit is not None and len(problems) >= limit:
            break
        if file_split is not None and _record_split(record) != file_split:
            continue
        problem = problem_from_record(
            record, path=name, row=row, default_source=_stem(name), pass_rate_field=pass_rate_field
        )
        if problem.id in seen:
            raise DataError(
                f"duplicate id {problem.id!r} (first at row {seen[problem.id]})",
                path=name,
                row=row,
                field="id",
            )
        seen[problem.id] = row
        problems.append(problem)
    return problems


def problem_from_record(
    record: dict[str, Any],
    *,
    path: Any = None,
    row: int | None = None,
    default_source: str = "",
    pass_rate_field: str = PASS_RATE_FIELD,
) -> Problem:
    """One Problem from one row (see the module doc for the field names it reads)."""

    def fail(message: str, field: str) -> DataError:
        return DataError(message, path=path, row=row, field=field)

    if not isinstance(record, dict):
        raise DataError(f"expected an object, got {type(record).__name__}", path=path, row=row)
    extra = record.get("extra_info") or {}
    if not isinstance(extra, dict):
        raise fail(f"expected an object, got {type(extra).__name__}", "extra_info")

    prompt_field = next((f for f in PROMPT_FIELDS if f in record), "prompt")
    prompt = _check_prompt(record.get(prompt_field), fail, prompt_field)

    if "reward_model" in record:
        reward_model = record["reward_model"]
        if not isinstance(reward_model, dict):
            raise fail("missing or not an object", "reward_model")
        answer, answer_field = reward_model.get("ground_truth"), "reward_model.ground_truth"
    else:
        answer_field = next((f for f in ANSWER_FIELDS[1:] if f in record), "answer")
        answer = record.get(answer_field)
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        answer = str(answer)
    if not isinstance(answer, str) or not answer.strip():
        raise fail(f"missing or empty answer (got {answer!r})", answer_field)

    if "pass_rate" in record:
        pass_rate = _check_pass_rate(record["pass_rate"], fail, "pass_rate")
    else:
        pass_rate = _check_pass_rate(
            extra.get(pass_rate_field), fail, f"extra_info.{pass_rate_field}"
        )

    if record.get("id") is not None:
        problem_id = str(record["id"])
    elif extra.get("index") is not None:
        problem_id = str(extra["index"])
    elif row is not None:
        problem_id = str(row)
    else:
        raise fail("missing id and no row number to fall back on", "id")

    source = record.get("data_source") or record.get("source") or default_source
    if not isinstance(source, str):
        raise fail(f"expected a string, got {type(source).__name__}", "source")
    solution = record.get("solution")
    if solution is not None and (not isinstance(solution, str) or not solution.strip()):
        raise fail(f"expected a non-empty string or null, got {solution!r}", "solution")
    metadata = dict(record.get("metadata") or {})
    consumed = _CONSUMED | {prompt_field, answer_field.split(".")[0]}
    metadata.update({k: v for k, v in record.items() if k not in consumed})
    return Problem(problem_id, prompt, answer, pass_rate, source, metadata, solution)


def save_problems_jsonl(problems: Iterable[Problem], path: str | Path) -> Path:
    """Write problems as JSONL that `load_problems` reads back into equal problems (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for p in problems:
        record = {
            "id": p.id,
            "prompt": p.prompt,
            "answer": p.answer,
            "pass_rate": p.pass_rate,
            "source": p.source,
            "metadata": p.metadata,
        }
        if p.solution is not None:
            record["solution"] = p.solution
        lines.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    atomic_write_text(path, "".join(lines))
    return path


def _check_prompt(prompt: Any, fail, field: str):
    if isinstance(prompt, str):
        if not prompt.strip():
            raise fail("empty prompt", field)
        return prompt
    if isinstance(prompt, list | tuple) and prompt:
        messages = []
        for i, message in enumerate(prompt):
            if not (
                isinstance(message, dict)
                and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)
            ):
                raise fail(
                    f"message {i} is not {{'role': str, 'content': str}}: {message!r:.80}", field
                )
            messages.append({"role": message["role"], "content": message["content"]})
        return messages
    raise fail(
        f"missing prompt, or not text / a non-empty list of chat messages: {prompt!r:.80}", field
    )


def _check_pass_rate(value: Any, fail, field: str) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise fail(f"pass rate must be a number in [0, 1] or null, got {value!r}", field)
    return float(value)


def _require_columns(columns: list[str], where) -> None:
    """Fail on the file, not on row 0, when a whole column is absent."""
    for needed in (PROMPT_FIELDS, ANSWER_FIELDS):
        if not set(needed) & set(columns):
            raise DataError(
                f"missing column (one of {list(needed)}; has {columns})",
                path=where,
                field=needed[0],
            )


def _parquet_records(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"cannot read parquet: {error}", path=path) from error
    _require_columns(parquet.schema_arrow.names, path)
    row = 0
    for batch in parquet.iter_batches(batch_size=4096):  # bounded memory on big training files
        for record in batch.to_pylist():
            yield row, record
            row += 1


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise DataError("file not found", path=path)
    row = 0
    with path.open(encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"line {line_number}: invalid JSON ({error.msg})", path=path, row=row
                ) from error
            yield row, record
            row += 1


def _load_from_disk(path: Path, split: str | None):
    import datasets  # imported on use: it is slow to import and most runs never need it

    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as error:
        raise DataError(f"not a saved Hugging Face dataset: {error}", path=path) from error
    return _pick_split(loaded, split, path)


def _load_from_hub(name: str, split: str | None):
    import datasets

    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as error:  # the hub raises many types (network, missing repo, bad config)
        raise DataError(f"cannot load from the Hugging Face hub: {error}", path=name) from error
    return _pick_split(loaded, None, name)


def _pick_split(loaded, split: str | None, where):
    if not hasattr(loaded, "keys"):  # a single Dataset
        return loaded
    splits = list(loaded.keys())
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in splits:
        raise DataError(
            f"choose a split with split=... (has {splits}), got {split!r}",
            path=where,
            field="split",
        )
    return loaded[split]


def _dataset_records(dataset, where) -> Iterator[tuple[int, dict]]:
    _require_columns(list(dataset.column_names), where)
    yield from enumerate(dataset)


def _record_split(record: dict) -> Any:
    extra = record.get("extra_info")
    if isinstance(extra, dict) and "split" in extra:
        return extra["split"]
    return record.get("split")


def _stem(name) -> str:
    return Path(str(name)).stem
