"""`rlscale verify PAIRS.jsonl`."""

import json

from typer.testing import CliRunner

from rlscale.cli import app


def test_verify_cli_writes_one_line_per_input_in_order(tmp_path):
    pairs = [
        {"gold": r"\frac{1}{2}", "answer": r"so the answer is \boxed{0.5}."},
        {"gold": 12, "answer": r"\boxed{13}"},
        {"gold": "1-1/e", "answer": r"\boxed{1 - \frac{1}{e}}"},
        {"gold": "3", "answer": "no box here"},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in pairs) + "\n\n")
    result = CliRunner().invoke(app, ["verify", str(path), "--timeout", "5", "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["correct"] for line in lines] == [True, False, True, False]
    assert [line["extracted"] for line in lines] == ["0.5", "13", r"1 - \frac{1}{e}", None]
    assert [line["timed_out"] for line in lines] == [False] * 4


def test_verify_cli_bad_line_names_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"gold": "1", "answer": "\\\\boxed{1}"}\n{"gold": "1", "answer": \n')
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 2
    assert "pairs.jsonl" in result.stderr and "line 2" in result.stderr
    assert result.stdout == ""


def test_verify_cli_missing_field(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"answer": "\\\\boxed{1}"}\n')
    result = CliRunner().invoke(app, ["verify", str(path)])
    assert result.exit_code == 2
    assert "line 1" in result.stderr and "'gold'" in result.stderr
