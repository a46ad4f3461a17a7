import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlscale.data import Problem, load_problems, save_problems_jsonl
from rlscale.errors import DataError

SHARED_FILES = {
    "guru_math/holdout_500.parquet": 500,
    "eval/gsm8k.parquet": 1319,
    "eval/aime2024.parquet": 30,
    "eval/amc2023.parquet": 40,
    "eval/math__math_500.parquet": 500,
}


def verl_rows(n: int) -> list[dict]:
    """Rows in the VeRL/guru schema, like the shared parquet files."""
    return [
        {
            "data_source": "toy",
            "prompt": [{"role": "user", "content": f"What is {i}+1?"}],
            "ability": "math",
            "reward_model": {"ground_truth": str(i + 1), "style": "rule"},
            "extra_info": {"index": 100 + i, "qwen2.5_7b_pass_rate": i / n, "split": "train"},
        }
        for i in range(n)
    ]


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("relative, rows", sorted(SHARED_FILES.items()))
def test_loads_each_named_shared_parquet(shared_data, relative, rows):
    problems = load_problems(shared_data / relative)
    assert len(problems) == rows
    assert all(p.answer.strip() for p in problems)
    assert all(isinstance(p.prompt, list) and p.prompt_text().strip() for p in problems)
    assert len({p.id for p in problems}) == rows


def test_loads_every_shared_parquet(shared_data):
    files = sorted(shared_data.rglob("*.parquet"))
    assert len(files) >= len(SHARED_FILES)
    for path in files:
        problems = load_problems(path)
        table = pq.read_table(path, columns=["reward_model"])
        assert len(problems) == table.num_rows, path
        gold = [r["ground_truth"] for r in table.column("reward_model").to_pylist()]
        assert [p.answer for p in problems] == gold, path


def test_guru_pass_rates_and_ids_come_from_extra_info(shared_data):
    path = shared_data / "guru_math/holdout_500.parquet"
    extra = pq.read_table(path, columns=["extra_info"]).column("extra_info").to_pylist()
    problems = load_problems(path)
    assert [p.pass_rate for p in problems] == [e["qwen2.5_7b_pass_rate"] for e in extra]
    assert [p.id for p in problems] == [str(e["index"]) for e in extra]
    assert sum(p.is_easy for p in problems) == 250
    other = load_problems(path, pass_rate_field="qwen3_30b_pass_rate")
    assert [p.pass_rate for p in other] == [e["qwen3_30b_pass_rate"] for e in extra]
    # eval sets carry no pass rate: unknown, not zero
    assert all(p.pass_rate is None for p in load_problems(shared_data / "eval/aime2024.parquet"))


def test_limit_and_split_filter(tmp_path):
    rows = verl_rows(6)
    rows[1]["extra_info"]["split"] = "test"
    path = write_parquet(tmp_path / "toy.parquet", rows)
    assert [p.id for p in load_problems(path, limit=2)] == ["100", "101"]
    assert [p.id for p in load_problems(path, split="test")] == ["101"]
    assert len(load_problems(path, split="train", limit=3)) == 3


def test_parquet_row_fields(tmp_path):
    path = write_parquet(tmp_path / "toy.parquet", verl_rows(3))
    p = load_problems(path)[2]
    assert p == Problem("102", [{"role": "user", "content": "What is 2+1?"}], "3", 2 / 3, "toy")
    assert p.metadata["ability"] == "math"
    assert p.metadata["extra_info"]["split"] == "train"


def test_missing_column_names_file_and_field(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "reward_model"} for r in verl_rows(3)]
    path = write_parquet(tmp_path / "no_answer.parquet", rows)
    with pytest.raises(DataError) as error:
        load_problems(path)
    message = str(error.value)
    assert "no_answer.parquet" in message and "reward_model" in message
    assert error.value.field == "reward_model"


@pytest.mark.parametrize("k", [0, 3])
def test_null_answer_names_file_row_and_field(tmp_path, k):
    rows = verl_rows(5)
    rows[k]["reward_model"]["ground_truth"] = None
    path = write_parquet(tmp_path / "null_answer.parquet", rows)
    with pytest.raises(DataError) as error:
        load_problems(path)
    assert (error.value.row, error.value.field) == (k, "reward_model.ground_truth")
    assert f"row {k}" in str(error.value) and "null_answer.parquet" in str(error.value)


@pytest.mark.parametrize(
    "field, value",
    [("prompt", None), ("prompt", []), ("prompt", [{"role": "user"}]), ("reward_model", None)],
)
def test_malformed_prompt_or_answer(tmp_path, field, value):
    rows = verl_rows(4)
    path = tmp_path / "bad.jsonl"  # JSONL so each row can have its own shape
    rows[2][field] = value
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as error:
        load_problems(path)
    assert error.value.row == 2
    assert error.value.field.startswith(field)


def test_bad_pass_rate(tmp_path):
    rows = verl_rows(3)
    rows[1]["extra_info"]["qwen2.5_7b_pass_rate"] = 1.5
    with pytest.raises(DataError) as error:
        load_problems(write_parquet(tmp_path / "rate.parquet", rows))
    assert (error.value.row, error.value.field) == (1, "extra_info.qwen2.5_7b_pass_rate")


def test_duplicate_ids(tmp_path):
    rows = verl_rows(3)
    rows[2]["extra_info"]["index"] = rows[0]["extra_info"]["index"]
    with pytest.raises(DataError) as error:
        load_problems(write_parquet(tmp_path / "dup.parquet", rows))
    assert (error.value.row, error.value.field) == (2, "id")


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "garbage.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="garbage.parquet"):
        load_problems(path)


def test_jsonl_fields_and_defaults(tmp_path):
    path = tmp_path / "plain.jsonl"
    lines = [
        {"id": "a", "prompt": "1+1=", "answer": "2", "pass_rate": 0.5, "source": "mine"},
        {"question": "2+2=", "ground_truth": 4, "level": 3},
        {"problem": "3+3=", "answer": "6", "pass_rate": None},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    a, b, c = load_problems(path)
    assert a == Problem("a", "1+1=", "2", 0.5, "mine")
    assert (b.id, b.prompt, b.answer, b.pass_rate, b.source) == ("1", "2+2=", "4", None, "plain")
    assert b.metadata == {"level": 3}
    assert (c.prompt, c.answer, c.pass_rate) == ("3+3=", "6", None)


def test_bad_json_line_names_row_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = json.dumps({"prompt": "1+1=", "answer": "2"})
    path.write_text(f"{good}\n\n{good}\n{{not json\n{good}\n")
    with pytest.raises(DataError) as error:
        load_problems(path)
    assert error.value.row == 2  # third record; blank lines are skipped
    assert "line 4" in str(error.value) and "broken.jsonl" in str(error.value)


def test_missing_answer_in_jsonl(tmp_path):
    path = tmp_path / "noanswer.jsonl"
    path.write_text(
        json.dumps({"prompt": "1+1=", "answer": "2"}) + "\n" + json.dumps({"prompt": "x"})
    )
    with pytest.raises(DataError) as error:
        load_problems(path)
    assert (error.value.row, error.value.field) == (1, "answer")


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="absent.jsonl"):
        load_problems(tmp_path / "absent.jsonl")
    with pytest.raises(DataError, match="absent.parquet"):
        load_problems(tmp_path / "absent.parquet")
    (tmp_path / "table.csv").write_text("prompt,answer\n")
    with pytest.raises(DataError, match="unsupported"):
        load_problems(tmp_path / "table.csv")


def test_jsonl_round_trip(tmp_path, shared_data):
    problems = load_problems(shared_data / "guru_math/holdout_500.parquet", limit=20)
    problems.append(Problem("x", "7+5=", "12", None, "arithmetic", {"tier": 1}))
    path = save_problems_jsonl(problems, tmp_path / "sub" / "out.jsonl")
    back = load_problems(path)
    assert back == problems
    assert [p.metadata for p in back] == [p.metadata for p in problems]


def test_hf_dataset_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    flat = datasets.Dataset.from_list(
        [{"question": f"{i}+{i}=", "answer": str(2 * i), "pass_rate": 0.1 * i} for i in range(5)]
    )
    flat.save_to_disk(tmp_path / "flat")
    problems = load_problems(tmp_path / "flat", limit=4)
    assert [p.answer for p in problems] == ["0", "2", "4", "6"]
    assert [p.id for p in problems] == ["0", "1", "2", "3"]
    assert math.isclose(problems[3].pass_rate, 0.3)

    verl = datasets.Dataset.from_list(verl_rows(4))
    datasets.DatasetDict({"train": verl, "test": verl.select([0, 1])}).save_to_disk(tmp_path / "dd")
    assert len(load_problems(tmp_path / "dd", split="test")) == 2
    assert load_problems(tmp_path / "dd", split="train")[3].prompt_text() == "What is 3+1?"
    with pytest.raises(DataError, match="split"):
        load_problems(tmp_path / "dd")

    bad = datasets.Dataset.from_list([{"question": "1+1=", "answer": None}, {"question": "q"}])
    bad.save_to_disk(tmp_path / "bad")
    with pytest.raises(DataError) as error:
        load_problems(tmp_path / "bad")
    assert (error.value.row, error.value.field) == (0, "answer")


def test_unreachable_hub_name_is_a_data_error(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="someone/no-such-dataset"):
        load_problems("someone/no-such-dataset")
