"""The run format as one typed schema: `RunMeta` (meta.json), `StepRecord` (one steps.jsonl line)
and `EvalRecord` (one evals.jsonl line). docs/run-format.md documents the same fields; a test
(tests/test_runs_schema.py) checks its tables against these models field for field.

Everything that makes or reads runs goes through these models: the trainer builds its records
with them, `RunWriter` validates what it writes, `read_run` validates what it reads (a bad record
is a `DataError` naming the file, line and field), the importers emit them and `RunTable` takes its
column lists from the fields' tags (`fields_where`).

Extra keys are allowed (`extra="allow"`) and kept as they are: meta.json may carry any key
(resume markers, notes), importers keep unknown CSV columns and other engines' metrics under their
own names, and a reader must take what a newer writer adds. The native trainer writes declared
fields only (`Record.native` refuses others), so the schema is its complete description.

Types are strict, JSON's own: no `"3"` for 3, no `true` for 1, and numbers keep int vs float as
given, so a record's JSON is the same whether or not it went through a model. numpy/torch scalars
become Python numbers and paths strings, as the writer encodes them. Non-finite floats are valid
numbers (a diverged loss is data). Type names (the docs' `type` column, `type_name`): `int` an
integer; `count` a count, an integer in native runs (imports may hold fractional values, e.g.
digitized curves); `number` any number; `str`, `bool`, `object` (a JSON object); `... or null`.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from pathlib import PurePath
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlscale.errors import DataError, RunLogError

META_FILE = "meta.json"
STEPS_FILE = "steps.jsonl"
EVALS_FILE = "evals.jsonl"

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
RunStatus = Literal["running", "finished", "failed"]


class Kind:
    """A field type's name in the docs and the phrase its validation errors use."""

    def __init__(self, name: str, phrase: str):
        self.name, self.phrase = name, phrase

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"


# int | float, each kept as it is (strict: bool and str are refused).
Real = Annotated[int | float, Kind("number", "a number")]
Count = Annotated[int | float, Kind("count", "a number (a count)")]
StepNumber = Annotated[int, Field(ge=0), Kind("int", "an integer >= 0")]

_PHRASES = {int: ("int", "an integer"), float: ("number", "a number"), str: ("str", "a string"),
            bool: ("bool", "true or false"), dict: ("object", "a JSON object"),
            Any: ("any", "any value")}


def _describe(annotation, metadata=()) -> tuple[str, str]:
    """(type name, error phrase) of an annotation."""
    for item in metadata:
        if isinstance(item, Kind):
            return item.name, item.phrase
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _describe(args[0], args[1:])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        name, phrase = _describe(members[0]) if len(members) == 1 else ("any", "any value")
        return (f"{name} or null", f"{phrase} or null") if len(members) < len(args) else \
            (name, phrase)
    if origin is Literal:
        return "str", "one of " + ", ".join(repr(a) for a in args)
    if origin is dict or isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _PHRASES[dict]
    return _PHRASES.get(annotation, (str(annotation), str(annotation)))


def _field(description: str, *, required: bool = False, unit: str | None = None, **tags):
    """A field with its description, unit and tags (`fields_where` finds fields by tag)."""
    extra = {"unit": unit, **tags} if unit else dict(tags)
    if required:
        return Field(description=description, json_schema_extra=extra or None)
    return Field(default=None, description=description, json_schema_extra=extra or None)


def _plain(value):
    """The writer's encoding of non-JSON scalars: paths as strings, numpy/torch scalars via
    .item() (rlscale.runs.log)."""
    if isinstance(value, PurePath):
        return str(value)
    if not isinstance(value, bool | int | float | str) and hasattr(value, "item"):
        return value.item()
    return value


def parse_json_line(line: bytes | str, *, path=None, line_number: int | None = None) -> dict:
    """One log line as a JSON object; RunLogError naming the file and line otherwise."""
    try:
        record = json.loads(line)
    except ValueError:  # includes UnicodeDecodeError
        record = None
    if not isinstance(record, dict):
        raise RunLogError(f"{path}: line {line_number} is not a JSON object: {line[:80]!r}")
    return record


class Record(BaseModel):
    """Shared behaviour of the three models: strict types, extra keys kept, DataErrors."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _plain_values(cls, data):
        return {k: _plain(v) for k, v in data.items()} if isinstance(data, Mapping) else data

    # --- construction ----------------------------------------------------------------------

    @classmethod
    def from_record(cls, record: Mapping | Record, *, path=None, line: int | None = None) -> Self:
        """Validate a dict (or take a model as it is); DataError naming path, line and field."""
        if isinstance(record, cls):
            return record
        if isinstance(record, Record):
            record = record.to_record()
        if not isinstance(record, Mapping):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", path=path,
                            line=line)
        try:
            return cls.model_validate(record)
        except ValidationError as error:
            raise cls._data_error(error, record, path=path, line=line) from None

    @classmethod
    def from_json_line(cls, line: bytes | str, *, path=None, line_number: int | None = None
                       ) -> Self:
        """One JSON line of a log: RunLogError if it is not a JSON object, DataError if it does
        not fit the model (both name the file and line)."""
        record = parse_json_line(line, path=path, line_number=line_number)
        return cls.from_record(record, path=path, line=line_number)

    @classmethod
    def native(cls, **fields) -> Self:
        """A record of rlscale's own trainer: declared fields only (the schema describes all of
        what it writes; an undeclared key is a bug to fix here and in docs/run-format.md)."""
        undeclared = sorted(set(fields) - set(cls.model_fields))
        if undeclared:
            raise TypeError(f"{cls.__name__}: fields {undeclared} are not in the run format "
                            "(rlscale/runs/schema.py, docs/run-format.md)")
        return cls.from_record(fields)

    # --- output ----------------------------------------------------------------------------

    def to_record(self) -> dict:
        """The record as written: the fields that were given (declaration order), then extras."""
        return self.model_dump(exclude_unset=True)

    def to_json_line(self) -> str:
        """One JSON line (no newline), non-finite floats as NaN/Infinity tokens."""
        return json.dumps(self.to_record(), allow_nan=True, ensure_ascii=False)

    # --- the schema as data ----------------------------------------------------------------

    @classmethod
    def fields_where(cls, tag: str, value: Any = None) -> tuple[str, ...]:
        """Names of the fields carrying `tag` (equal to `value` if given). A rank tag (an int:
        `run_key`, `table_column`) orders them by rank, others keep declaration order."""
        found = []
        for name, info in cls.model_fields.items():
            tagged = (info.json_schema_extra or {}).get(tag)
            if tagged not in (None, False) and (value is None or tagged == value):
                found.append((tagged, name))
        if all(type(rank) is int for rank, _ in found):
            found.sort(key=lambda item: item[0])  # stable: equal ranks keep declaration order
        return tuple(name for _, name in found)

    @classmethod
    def required_fields(cls) -> tuple[str, ...]:
        return tuple(name for name, info in cls.model_fields.items() if info.is_required())

    @classmethod
    def integer_fields(cls) -> tuple[str, ...]:
        """Fields holding integers in native runs (`int` and `count`): importers write an
        integral float there as an int."""
        return tuple(name for name in cls.model_fields
                     if cls.type_name(name).split(" ")[0] in ("int", "count"))

    @classmethod
    def type_name(cls, name: str) -> str:
        """The field's type as docs/run-format.md names it (`int`, `count`, `number`, ...)."""
        info = cls.model_fields[name]
        return _describe(info.annotation, info.metadata)[0]

    @classmethod
    def unit(cls, name: str) -> str | None:
        return (cls.model_fields[name].json_schema_extra or {}).get("unit")

    @classmethod
    def _data_error(cls, error: ValidationError, record: Mapping, *, path, line) -> DataError:
        first = error.errors()[0]
        loc = first["loc"]
        field = str(loc[0]) if loc else None
        if first["type"] == "missing":
            message = "missing (a required field)"
        elif field in cls.model_fields and first["input"] is _plain(record.get(field)):
            info = cls.model_fields[field]
            phrase = _describe(info.annotation, info.metadata)[1]
            message = f"must be {phrase}, got {first['input']!r}"
        else:  # inside a nested value (an object's key): pydantic's words, the key's path
            field = ".".join(str(part) for part in loc)
            text = first["msg"]
            message = f"{text[:1].lower()}{text[1:]}, got {first['input']!r}"
        return DataError(message, path=path, line=line, field=field)


# ----------------------------------------------------------------------------- meta.json


class ImportedFrom(BaseModel):
    """meta.json's `imported`: where an imported run came from."""

    model_config = ConfigDict(extra="allow", strict=True)
    format: Literal["csv", "wandb", "verl"] = Field(description="The importer (`--format`).")
    path: str = Field(description="The source file.")
    at: str = Field(description="When it was imported (ISO 8601 UTC).")


class RunMeta(Record):
    """meta.json: what a run is. `source` tags the docs' three tables: keys the writer writes,
    keys the trainer writes, optional keys the analysis reads. `run_key=k`: copied onto every
    RunTable row as its k-th run column (and, for an import, ordered so in run labels). Nothing
    is required: a reader takes any meta.json, missing keys read as absent. Field order: the
    order the trainer writes its keys."""

    run_id: str = _field("the run's id (default: the directory's name)", source="writer",
                         run_key=1)
    experiment: str = _field("experiment name (the parent directory)", source="trainer",
                             run_key=2)
    model: str = _field("ladder name, path or hub name of the starting policy",
                        source="trainer", run_key=12)
    model_path: str = _field("the resolved local checkpoint path", source="trainer")
    family: str = _field("model family label (e.g. qwen2.5, mini)", source="trainer",
                         run_key=6)
    variant: str = _field("base or instruct", source="trainer", run_key=7)
    order: str = _field("prompt order of the data schedule: curriculum or shuffle",
                        source="trainer", run_key=8)
    N: Real = _field("model size of the paper's compute C = 6 N T (per n_for_compute): the "
                     "laws' N", unit="parameters", source="trainer", run_key=3)
    N_total: Count = _field("parameters counted, embeddings included", unit="parameters",
                            source="trainer", run_key=4)
    N_nonembed: Count = _field("parameters counted, embeddings excluded", unit="parameters",
                               source="trainer", run_key=5)
    n_for_compute: Literal["nominal", "counted", "counted_non_embedding"] = _field(
        "which size N is", source="trainer")
    seed: int = _field("run seed", source="trainer", run_key=9)
    tau: Count = _field("data-reuse factor (each selected prompt is used tau times)",
                        source="trainer", run_key=10)
    G: Count = _field("rollouts per prompt (group size)", unit="rollouts", source="trainer",
                      run_key=11)
    prompts_per_step: Count = _field("prompts consumed per step", unit="prompts",
                                     source="trainer")
    steps: int = _field("planned number of steps", unit="steps", source="trainer")
    n_train_problems: int = _field("problems in the training pool", unit="problems",
                                   source="trainer")
    eval_sets: dict[str, int] = _field("{eval set: number of problems} evaluated",
                                       source="trainer")
    config: dict[str, Any] = _field("the full training config (every TrainConfig field)",
                                    source="trainer")
    config_hash: str = _field("hash of the config (resume checks it)", source="trainer")
    rlscale_version: str = _field("the rlscale version the trainer ran with", source="trainer")
    torch_version: str = _field("the torch version the trainer ran with", source="trainer")
    status: RunStatus = _field("running, then finished or failed (a crashed run stays running)",
                               source="writer")
    created: str = _field("when the run directory was first written", unit="ISO 8601 UTC",
                          source="writer")
    updated: str = _field("last change of meta.json", unit="ISO 8601 UTC", source="writer")
    resumed: str = _field("when the run was last resumed (only if it was)", unit="ISO 8601 UTC",
                          source="writer")
    finished: str = _field("when finish() ran", unit="ISO 8601 UTC", source="writer")
    error: str = _field("'<ExceptionType>: <message>' of a failed run", source="writer")
    versions: dict[str, str | None] = _field("{python, torch, transformers, rlscale} versions",
                                             source="writer")
    primary_eval: str | None = _field("the eval set that gives the run's L by default",
                                      source="analysis")
    imported: ImportedFrom = _field("importers only: {format, path, at}", source="analysis")


# ----------------------------------------------------------------------------- steps.jsonl


class StepRecord(Record):
    """One steps.jsonl line: a training step's figures and the cumulative accounting.

    Tags: `cumulative` (counts from the run's start: 0 at step 0), `table_column` (a RunTable.df
    column even where no run has it; a rank orders them), `timing` (the only fields that differ
    between two runs of one config and seed), `imports_only`. Field order: the order the trainer
    writes.
    """

    step: StepNumber = _field("step number, 1, 2, ... (strictly increasing)", required=True,
                              unit="steps")
    D: Count = _field("prompts consumed so far, reused prompts counted each time",
                      unit="prompts", cumulative=True, table_column=True)
    D_unique: Count = _field("distinct prompts seen so far", unit="prompts", cumulative=True,
                             table_column=True)
    epoch: Real = _field("D / distinct prompts in the run's schedule (1.0 = one pass)",
                         unit="passes", cumulative=True, table_column=True)
    prompts: Count = _field("prompts in this step's batch", unit="prompts")
    sequences: Count = _field("rollouts generated this step (prompts x G)", unit="sequences")
    prompt_tokens: Count = _field("prompt tokens of this step's rollouts (each of the G copies "
                                  "counted)", unit="tokens")
    response_tokens: Count = _field("generated tokens of this step", unit="tokens")
    tokens: Count = _field("prompt_tokens + response_tokens of this step", unit="tokens")
    T: Count = _field("all prompt + response tokens so far", unit="tokens", cumulative=True,
                      table_column=True)
    prompt_tokens_total: Count = _field("prompt tokens so far", unit="tokens", cumulative=True)
    response_tokens_total: Count = _field("response tokens so far", unit="tokens",
                                          cumulative=True)
    C_step: Real = _field("this step's paper compute 6 N tokens", unit="FLOPs")
    C: Real = _field("the paper's compute so far, 6 N T", unit="FLOPs", cumulative=True,
                     table_column=True)
    flops_step: Real = _field("this step's total FLOPs: generation, scoring passes, updates",
                              unit="FLOPs")
    flops: Real = _field("total FLOPs so far", unit="FLOPs", cumulative=True, table_column=True)
    reward_timeouts_total: Count = _field("answers whose verification timed out, so far",
                                          unit="answers", cumulative=True)
    flops_generation: Real = _field("the generation part of flops_step", unit="FLOPs")
    reward: Real = _field("mean training reward of the step's rollouts", unit="reward")
    reward_std: Real = _field("standard deviation of the rollouts' reward", unit="reward")
    reward_timeouts: Count = _field("answers whose verification timed out this step (scored 0)",
                                    unit="answers")
    solved_all_frac: Real = _field("fraction of prompts whose G rollouts were all correct",
                                   unit="fraction")
    solved_none_frac: Real = _field("fraction of prompts whose G rollouts were all wrong",
                                    unit="fraction")
    response_len: Real = _field("mean response length", unit="tokens")
    response_len_max: Count = _field("longest response", unit="tokens")
    truncated_frac: Real = _field("fraction of responses cut at the token limit",
                                  unit="fraction")
    policy_loss: Real = _field("the clipped GRPO surrogate, token mean")
    kl: Real = _field("k3 estimate of KL(policy || reference), token mean", unit="nats")
    entropy: Real = _field("policy entropy per token, token mean", unit="nats")
    clip_frac: Real = _field("fraction of tokens whose ratio was clipped", unit="fraction")
    ratio_mean: Real = _field("mean importance ratio policy / old policy over the tokens")
    ratio_max: Real = _field("largest importance ratio over the step's tokens")
    ratio_min: Real = _field("smallest importance ratio over the step's tokens")
    grad_norm: Real = _field("gradient norm before clipping, mean over the step's updates")
    updates: Count = _field("optimizer updates this step (mini-batches x epochs)",
                            unit="updates")
    lr: Real = _field("learning rate")
    time_generation: Real = _field("seconds spent generating rollouts", unit="s", timing=True)
    time_step: Real = _field("seconds for the whole step", unit="s", timing=True)
    tokens_per_s: Real = _field("tokens / time_step", unit="tokens/s", timing=True)
    gflops_per_s: Real = _field("flops_step / time_step / 1e9", unit="GFLOP/s", timing=True)
    wall_time: Real = _field("imports only: seconds since the run started (W&B _runtime)",
                             unit="s", timing=True, imports_only=True)


# ----------------------------------------------------------------------------- evals.jsonl


class EvalRecord(Record):
    """One evals.jsonl line: one (step, eval set) evaluation. `L` is filled in as 1 - pass1
    when absent. Tags as StepRecord's. Field order: the order the trainer writes."""

    step: StepNumber = _field("the step evaluated (0 = the starting model)", required=True,
                              unit="steps")
    eval_set: str = _field("the eval set's name", required=True, table_column=1)
    n_problems: Count = _field("problems evaluated", unit="problems", table_column=4)
    samples: Count = _field("samples per problem", unit="samples", table_column=5)
    pass1: Real = _field("pass@1 by the run's estimator, mean over problems", required=True,
                         unit="fraction", table_column=2)
    L: Real = _field("test loss 1 - pass1 (filled in when absent)", unit="fraction",
                     table_column=3)
    estimator: Literal["sampled", "canonical"] = _field("how pass1 was estimated (absent: "
                                                        "sampled)")
    stderr: Real = _field("standard error of pass1 from the sampling", unit="fraction")
    pass1_sampled: Real = _field("the plain mean correctness of the samples", unit="fraction")
    pass1_canonical: Real | None = _field("canonical only: the mean exact probability of the "
                                          "canonical solutions", unit="fraction")
    temperature: Real = _field("sampling temperature (0 for greedy)")
    greedy: bool = _field("whether decoding was greedy")
    reward_timeouts: Count = _field("answers whose verification timed out (scored 0)",
                                    unit="answers")
    time_eval: Real = _field("seconds the evaluation took", unit="s", timing=True)
    noise_std: Real = _field("step 0 with eval_noise_repeats > 0: the std of L over "
                             "noise_repeats evaluations of the starting policy",
                             unit="fraction")
    noise_repeats: Count = _field("step 0 with eval_noise_repeats > 0: evaluations behind "
                                  "noise_std", unit="evaluations")

    @model_validator(mode="after")
    def _fill_loss(self) -> Self:
        if "L" not in self.model_fields_set and self.pass1 is not None:
            self.L = 1.0 - float(self.pass1)
        return self


# Fields that measure time: the only ones that differ between two runs of one config and seed.
TIMING_FIELDS = tuple(dict.fromkeys((*StepRecord.fields_where("timing"),
                                     *EvalRecord.fields_where("timing"))))
# meta.json keys RunTable copies onto every row (NaN/None where a run lacks them).
RUN_KEYS = RunMeta.fields_where("run_key")
