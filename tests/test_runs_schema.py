"""The run format's schema (rlscale.runs.schema) against docs/run-format.md, round trips through
the writer and reader, and bad records named by file, line and field."""

import fnmatch
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from rlscale.errors import DataError, RunLogError
from rlscale.runs import RunTable, RunWriter, read_run
from rlscale.runs.importers import EVAL_FIELDS, META_COLUMNS, import_csv
from rlscale.runs.schema import (
    RUN_KEYS,
    TIMING_FIELDS,
    EvalRecord,
    RunMeta,
    StepRecord,
)
from rlscale.runs.table import CUMULATIVE, CUMULATIVE_EXTRA, EVAL_COLUMNS

DOC = Path(__file__).resolve().parents[1] / "docs" / "run-format.md"
# The meta.json section's three tables, by the sentence that introduces each, and the schema's
# `source` tag they document.
META_TABLES = {"Keys written by the writer itself": "writer",
               "Keys written by the trainer": "trainer",
               "Optional keys the analysis reads": "analysis"}


def doc_tables() -> dict[str, list[tuple[list[str], str, str]]]:
    """Every field table of the doc as {table name: [(field names, type, meaning)]}; the table
    name is the section (`steps.jsonl`, `evals.jsonl`) or, in meta.json, its intro sentence."""
    tables: dict[str, list] = {}
    section = intro = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section, intro = line[3:].split(":")[0].strip(), None
        elif line and not line.startswith("|"):
            intro = line
        elif line.startswith("|") and section in ("meta.json", "steps.jsonl", "evals.jsonl"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if cells[0] in ("key", "field") or set(cells[0]) <= {"-"}:
                assert cells[:2] == [cells[0], "type"] or set(cells[0]) <= {"-"}, line
                continue
            name = section
            if section == "meta.json":
                name = next(title for title in META_TABLES if title in intro)
            fields = re.findall(r"`([^`]+)`", cells[0])
            assert fields and len(cells) == 3, f"not a `field` | type | meaning row: {line}"
            tables.setdefault(name, []).append((fields, cells[1], cells[2]))
    return tables


def documented(rows) -> dict[str, str]:
    return {field: kind for fields, kind, _ in rows for field in fields}


@pytest.mark.parametrize("table, model", [("steps.jsonl", StepRecord),
                                          ("evals.jsonl", EvalRecord)])
def test_doc_tables_match_the_record_models(table, model):
    rows = doc_tables()[table]
    names = [field for fields, _, _ in rows for field in fields]
    assert len(names) == len(set(names)), f"{table}: a field documented twice"
    assert set(names) == set(model.model_fields), (
        f"{table}: only in the doc {sorted(set(names) - set(model.model_fields))}, "
        f"only in the schema {sorted(set(model.model_fields) - set(names))}")
    for field, kind in documented(rows).items():
        required = field in model.required_fields()
        assert kind == model.type_name(field) + (" (required)" if required else ""), field


def test_doc_tables_match_run_meta():
    tables = doc_tables()
    for title, source in META_TABLES.items():
        rows = documented(tables[title])
        assert set(rows) == set(RunMeta.fields_where("source", source)), title
        for field, kind in rows.items():
            assert kind == RunMeta.type_name(field), field  # no meta key is required
    assert not RunMeta.required_fields()
    everything = [field for title in META_TABLES for field in documented(tables[title])]
    assert sorted(everything) == sorted(RunMeta.model_fields)


def test_doc_names_the_run_keys_and_timing_fields():
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    copied = re.search(r"`RunTable` copies (.*?) onto every row", text).group(1)
    assert re.findall(r"`([^`]+)`", copied) == [*RUN_KEYS, "primary_eval"]
    timing = re.search(r"Timing fields \((.*?)\) are the only ones", text).group(1)
    patterns = re.findall(r"`([^`]+)`", timing)  # `time_*`, `tokens_per_s`, ...
    fields = [*StepRecord.model_fields, *EvalRecord.model_fields]
    named = {f for f in fields if any(fnmatch.fnmatchcase(f, p) for p in patterns)}
    assert named == set(TIMING_FIELDS)


def test_every_field_has_a_description():
    for model in (RunMeta, StepRecord, EvalRecord):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"


def test_the_table_and_importer_lists_come_from_the_schema():
    assert CUMULATIVE == ("D", "D_unique", "epoch", "T", "C", "flops")
    assert CUMULATIVE_EXTRA == ("prompt_tokens_total", "response_tokens_total",
                                "reward_timeouts_total")
    assert EVAL_COLUMNS == ("eval_set", "pass1", "L", "n_problems", "samples")
    assert RUN_KEYS == ("run_id", "experiment", "N", "N_total", "N_nonembed", "family", "variant",
                        "order", "seed", "tau", "G", "model")
    assert RUN_KEYS[2:] == META_COLUMNS
    assert {"pass1", "L", "n_problems", "samples", "temperature", "stderr"} <= set(EVAL_FIELDS)
    assert "reward_timeouts" not in EVAL_FIELDS  # a step field too: it stays a step field


# --- round trips ---------------------------------------------------------------------------


STEP = {"step": 3, "D": 96, "T": 5598, "C": 4.5e9, "flops_step": 7190443584, "reward": 0.5,
        "kl": math.nan, "grad_norm": math.inf, "lr": 5e-05, "engine/extra": "kept"}


def test_step_record_round_trips_exactly():
    record = StepRecord.from_record(STEP)
    assert record.to_record() == STEP
    assert type(record.to_record()["flops_step"]) is int  # numbers keep int vs float
    assert list(record.to_record())[:3] == ["step", "D", "T"]  # declared order, then extras
    line = record.to_json_line()
    assert "NaN" in line and "Infinity" in line
    back = StepRecord.from_json_line(line).to_record()
    assert math.isnan(back.pop("kl")) and back == {k: v for k, v in STEP.items() if k != "kl"}
    assert StepRecord.from_record(record) is record


def test_numpy_scalars_and_paths_become_plain_values():
    record = StepRecord.from_record({"step": np.int64(2), "reward": np.float32(0.25),
                                     "D": np.int64(64)}).to_record()
    assert record == {"step": 2, "reward": 0.25, "D": 64} and type(record["D"]) is int
    meta = RunMeta.from_record({"model_path": Path("/m"), "N": np.float64(1e6)}).to_record()
    assert meta == {"model_path": "/m", "N": 1e6}


def test_eval_record_fills_the_loss():
    assert EvalRecord(step=0, eval_set="holdout", pass1=0.25).to_record() == {
        "step": 0, "eval_set": "holdout", "pass1": 0.25, "L": 0.75}
    given = {"step": 1, "eval_set": "h", "pass1": 0.25, "L": 0.5, "pass1_canonical": None}
    assert EvalRecord.from_record(given).to_record() == given  # an explicit null stays


def test_native_records_take_declared_fields_only():
    assert StepRecord.native(step=1, reward=0.5).to_record() == {"step": 1, "reward": 0.5}
    with pytest.raises(TypeError, match=r"\['rewrad'\] are not in the run format"):
        StepRecord.native(step=1, rewrad=0.5)


def test_writer_and_reader_round_trip_models(tmp_path):
    meta = RunMeta(experiment="e", N=2e6, seed=3, tau=1, G=4, family="mini")
    with RunWriter(tmp_path / "e" / "r", meta) as run:
        run.log_eval(EvalRecord(step=0, eval_set="holdout", pass1=0.2, n_problems=8, samples=1))
        run.log_step(StepRecord.from_record(STEP))
    back = read_run(tmp_path / "e" / "r")
    assert back.meta["N"] == 2e6 and back.meta["status"] == "finished"
    RunMeta.from_record(back.meta)  # what the writer adds fits the schema too
    steps = [json.loads(line) for line in (tmp_path / "e/r/steps.jsonl").read_text().splitlines()]
    assert math.isnan(steps[0].pop("kl")) and steps[0] == {k: v for k, v in STEP.items()
                                                           if k != "kl"}
    evals = (tmp_path / "e/r/evals.jsonl").read_text().splitlines()
    assert json.loads(evals[0]) == {"step": 0, "eval_set": "holdout", "n_problems": 8,
                                    "samples": 1, "pass1": 0.2, "L": 0.8}
    row = RunTable.load(tmp_path).df.iloc[0]
    assert row["run"] == "e/r" and row["L"] == pytest.approx(0.8) and row["D"] == 0


# --- bad records ---------------------------------------------------------------------------


def write_run(root: Path) -> Path:
    with RunWriter(root / "r", {"experiment": "e", "N": 1e6}) as run:
        run.log_eval({"step": 0, "eval_set": "h", "pass1": 0.1})
        for step in (1, 2, 3):
            run.log_step({"step": step, "D": 8 * step, "reward": 0.1 * step})
    return root / "r"


def replace_line(path: Path, number: int, edit) -> None:
    lines = path.read_text().splitlines()
    record = json.loads(lines[number - 1])
    edit(record)
    lines[number - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def test_a_wrong_type_names_file_line_and_field(tmp_path):
    run_dir = write_run(tmp_path)
    replace_line(run_dir / "steps.jsonl", 2, lambda r: r.update(reward="high"))
    with pytest.raises(DataError, match=r"steps\.jsonl, line 2, field 'reward': must be a "
                                        r"number, got 'high'"):
        read_run(run_dir)
    with pytest.raises(DataError, match=r"steps\.jsonl, line 2, field 'reward'"):
        RunTable.load(tmp_path)


@pytest.mark.parametrize("edit, match", [
    (lambda r: r.update(step=1.5), r"line 3, field 'step': must be an integer >= 0, got 1.5"),
    (lambda r: r.update(D=True), r"line 3, field 'D': must be a number \(a count\), got True"),
    (lambda r: r.update(D="24"), r"line 3, field 'D': must be a number \(a count\), got '24'"),
    (lambda r: r.pop("step"), r"line 3, field 'step': missing"),
])
def test_bad_step_records(tmp_path, edit, match):
    run_dir = write_run(tmp_path)
    replace_line(run_dir / "steps.jsonl", 3, edit)
    with pytest.raises(DataError, match=match):
        read_run(run_dir)


def test_bad_eval_records_and_meta(tmp_path):
    run_dir = write_run(tmp_path)
    replace_line(run_dir / "evals.jsonl", 1, lambda r: r.pop("pass1"))
    with pytest.raises(DataError, match=r"evals\.jsonl, line 1, field 'pass1': missing"):
        read_run(run_dir)
    replace_line(run_dir / "evals.jsonl", 1, lambda r: r.update(pass1=0.1, greedy="no"))
    with pytest.raises(DataError, match=r"line 1, field 'greedy': must be true or false"):
        read_run(run_dir)
    replace_line(run_dir / "evals.jsonl", 1, lambda r: r.update(greedy=False, estimator="best"))
    with pytest.raises(DataError, match=r"field 'estimator': must be one of 'sampled', "
                                        r"'canonical', got 'best'"):
        read_run(run_dir)
    replace_line(run_dir / "evals.jsonl", 1, lambda r: r.pop("estimator"))
    meta = json.loads((run_dir / "meta.json").read_text())
    (run_dir / "meta.json").write_text(json.dumps({**meta, "N": "1e6"}))
    with pytest.raises(DataError, match=r"meta\.json, field 'N': must be a number, got '1e6'"):
        read_run(run_dir)
    (run_dir / "meta.json").write_text(json.dumps({**meta, "eval_sets": {"h": "many"}}))
    with pytest.raises(DataError, match=r"meta\.json, field 'eval_sets\.h'"):
        read_run(run_dir)
    (run_dir / "meta.json").write_text(json.dumps({**meta, "status": "done"}))
    with pytest.raises(DataError, match=r"field 'status': must be one of 'running'"):
        read_run(run_dir)
    (run_dir / "meta.json").write_text(json.dumps(meta))
    assert len(read_run(run_dir).steps) == 3  # repaired: reads again


def test_a_corrupt_line_keeps_its_message(tmp_path):
    run_dir = write_run(tmp_path)
    with pytest.raises(RunLogError, match=r"steps\.jsonl: line 2 is not a JSON object"):
        StepRecord.from_json_line('{"step": 2', path=run_dir / "steps.jsonl", line_number=2)


def test_the_writer_refuses_a_wrong_type_before_writing(tmp_path):
    with pytest.raises(DataError, match=r"meta\.json, field 'seed': must be an integer"):
        RunWriter(tmp_path / "m", {"seed": "0"})
    assert not (tmp_path / "m").exists()
    with RunWriter(tmp_path / "r", {}) as run:
        with pytest.raises(DataError, match=r"steps\.jsonl, field 'reward'"):
            run.log_step({"step": 1, "reward": "high"})
        run.log_step({"step": 1, "reward": 0.5})
        with pytest.raises(DataError, match=r"evals\.jsonl, field 'pass1'"):
            run.log_eval({"step": 1, "eval_set": "h", "pass1": "0.5"})
        with pytest.raises(DataError, match=r"meta\.json, field 'N'"):
            run.update_meta(N="big")
    assert len(read_run(tmp_path / "r").steps) == 1
    assert read_run(tmp_path / "r").evals.empty


def test_csv_import_emits_schema_records(tmp_path):
    (tmp_path / "t.csv").write_text("run,N,seed,step,L,reward,tokens,stderr\n"
                                    "a,7e9,1.0,1,0.5,0.25,100.0,0.01\n"
                                    "a,7e9,1.0,2,0.4,0.5,120.0,0.01\n")
    run = read_run(import_csv(tmp_path / "t.csv", tmp_path / "o", experiment="x")[0])
    assert run.meta["seed"] == 1 and type(run.meta["seed"]) is int
    steps = [json.loads(line) for line in (run.path / "steps.jsonl").read_text().splitlines()]
    assert steps[0] == {"step": 1, "tokens": 100, "reward": 0.25}  # integral count -> int
    assert run.evals["stderr"].tolist() == [0.01, 0.01]  # an eval field goes to the evals
    (tmp_path / "bad.csv").write_text("run,N,step,L,reward\na,7e9,1,0.5,0.2\na,7e9,2,0.4,high\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 3, field 'reward': must be a number"):
        import_csv(tmp_path / "bad.csv", tmp_path / "o2", experiment="x")
    (tmp_path / "seed.csv").write_text("run,N,seed,step,L\na,7e9,1,1,0.5\nb,7e9,2.5,1,0.5\n")
    with pytest.raises(DataError, match=r"seed\.csv, field 'seed': must be an integer"):
        import_csv(tmp_path / "seed.csv", tmp_path / "o3", experiment="x")
    assert not (tmp_path / "o3").exists()  # checked before any run was written
