"""Importers (CSV table, W&B history, VeRL log) and `rlscale import` write ordinary runs."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.errors import DataError
from rlscale.runs import RunTable, read_run
from rlscale.runs.importers import (
    ColumnMap,
    import_csv,
    import_verl,
    import_wandb,
    parse_count,
    parse_verl_log,
)


def test_csv_round_trip_through_run_table(tmp_path):
    source = pd.DataFrame({
        "run": ["a"] * 3 + ["b"] * 3,
        "N": [1e6] * 3 + [4e6] * 3,
        "seed": [1] * 3 + [2] * 3,
        "step": [0, 1, 2] * 2,
        "T": [0, 100, 250, 0, 120, 260],
        "score": [0.1, 0.2, 0.3, 0.15, 0.3, 0.45],
        "L": [0.9, 0.8, 0.7, 0.85, 0.7, 0.55],
    })
    source.to_csv(tmp_path / "long.csv", index=False)
    dirs = import_csv(tmp_path / "long.csv", tmp_path / "out", experiment="x",
                      mapping=["reward=score"], prompts_per_step=16)
    assert [d.name for d in dirs] == ["a", "b"]
    law = RunTable.load(tmp_path / "out").law_table()
    assert law["L"].tolist() == source["L"].tolist()
    assert law["N"].tolist() == source["N"].tolist()
    assert law["T"].tolist() == source["T"].tolist()
    assert law["C"].tolist() == pytest.approx((6 * source["N"] * source["T"]).tolist())
    assert law["D"].tolist() == (source["step"] * 16).tolist()
    run = read_run(tmp_path / "out" / "x" / "b")
    assert run.meta["seed"] == 2 and run.meta["imported"]["format"] == "csv"
    assert run.steps["reward"].tolist() == [0.15, 0.3, 0.45]
    assert "score" not in run.steps.columns  # mapped columns are renamed, not duplicated


def test_csv_without_run_column_groups_by_size_and_checks_input(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("tau,step,L\n1,10,0.7\n1,11,0.69\n20,10,0.72\n")
    dirs = import_csv(path, tmp_path / "out", experiment="reuse", n=7e9)
    assert sorted(d.name for d in dirs) == ["N7B-tau1", "N7B-tau20"]
    run = read_run(dirs[0])
    assert run.meta["tau"] == 1 and run.evals["L"].tolist() == [0.7, 0.69]
    assert run.steps.empty  # nothing but the step number: no step records
    with pytest.raises(DataError, match="field 'N'.*--n"):
        import_csv(path, tmp_path / "o2", experiment="reuse")
    path.write_text("N,step,L\n1e6,1,0.7\n1e6,1,0.6\n")
    with pytest.raises(DataError, match="line 3.*step 1 twice"):
        import_csv(path, tmp_path / "o3", experiment="e")
    path.write_text("N,step,L\n1e6,x,0.7\n")
    with pytest.raises(DataError, match="line 2.*'step'"):
        import_csv(path, tmp_path / "o4", experiment="e")


def test_column_maps_and_counts():
    assert ColumnMap.parse("L=val/test_score:1-") == ColumnMap("L", "val/test_score", "1-")
    assert ColumnMap.parse("T=a:b:cumsum") == ColumnMap("T", "a:b", "cumsum")
    assert ColumnMap.parse("x=weird:col") == ColumnMap("x", "weird:col", None)
    values = pd.Series([1.0, 2.0, 3.0])
    assert ColumnMap.parse("D=c:*512").apply(values).tolist() == [512, 1024, 1536]
    assert ColumnMap.parse("T=c:cumsum").apply(values).tolist() == [1, 3, 6]
    with pytest.raises(DataError, match="FIELD=COLUMN"):
        ColumnMap.parse("nonsense")
    assert parse_count("7B") == 7e9 and parse_count("0.5M") == 5e5 and parse_count("3e9") == 3e9
    with pytest.raises(DataError, match="--n"):
        parse_count("big")


def test_wandb_history_with_explicit_mapping(tmp_path):
    history = pd.DataFrame({
        "_step": [0, 1, 1, 2, 3],  # W&B may log one step in several rows
        "_runtime": [1.0, 10.0, 11.0, 20.0, 30.0],
        "val/test_score": [0.2, None, 0.3, None, 0.5],
        "critic/score/mean": [None, 0.1, None, 0.2, 0.25],
        "perf/total_num_tokens": [None, 500, None, 700, 600],
    })
    history.to_csv(tmp_path / "history.csv", index=False)
    run_dir = import_wandb(tmp_path / "history.csv", tmp_path / "out", experiment="w", n=1.5e9,
                           mapping=["L=val/test_score:1-"], eval_set="math500")
    run = read_run(run_dir)
    assert run.meta["N"] == 1.5e9 and run.meta["primary_eval"] == "math500"
    assert run.evals["step"].tolist() == [0, 1, 3]
    assert run.evals["L"].tolist() == pytest.approx([0.8, 0.7, 0.5])
    assert run.steps["step"].tolist() == [1, 2, 3]  # step 0 carried only an evaluation
    assert run.steps["reward"].tolist() == [0.1, 0.2, 0.25]
    assert run.steps["T"].tolist() == [500, 1200, 1800]  # cumulative from per-step tokens
    assert run.steps["C"].tolist() == pytest.approx([6 * 1.5e9 * t for t in (500, 1200, 1800)])
    assert run.steps["wall_time"].tolist() == [11.0, 20.0, 30.0]
    history["train/global_step"] = history["_step"] * 10  # a trainer with its own step count
    history.to_csv(tmp_path / "history.csv", index=False)
    own_steps = read_run(import_wandb(tmp_path / "history.csv", tmp_path / "o1", experiment="w",
                                      n=1e9, mapping=["step=train/global_step",
                                                      "L=val/test_score:1-"]))
    assert own_steps.evals["step"].tolist() == [0, 10, 30]
    with pytest.raises(DataError, match="'nope' not found"):
        import_wandb(tmp_path / "history.csv", tmp_path / "o2", experiment="w", n=1e9,
                     mapping=["L=nope:1-"])


VERL_LOG = """\
(TaskRunner pid=1) Training Progress:   0%|          | 0/3
(TaskRunner pid=1) step:0 - val/test_score/openai/gsm8k:0.512 - val/test_score/math:0.301
(TaskRunner pid=1) step:1 - critic/score/mean:0.250 - response_length/mean:412.500 \
- actor/kl_loss:0.001 - actor/pg_clipfrac:0.020 - perf/total_num_tokens:1000.000 \
- timing_s/step:12.000
\x1b[36m(TaskRunner pid=1)\x1b[0m step:2 - critic/score/mean:0.300 \
- perf/total_num_tokens:1100.000 - timing_s/step:11.000 - val/test_score/openai/gsm8k:0.530 \
- val/test_score/math:0.320
{"step": 3, "data": {"critic/score/mean": 0.35, "perf/total_num_tokens": 900, \
"val-core/openai/gsm8k/acc/mean@4": 0.55, "val-core/openai/gsm8k/reward/mean@4": 0.5, "x": "text"}}
"""


def test_verl_console_and_file_logger_lines(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(VERL_LOG)
    history = parse_verl_log(path)
    assert history.index.tolist() == [0, 1, 2, 3]
    assert history.loc[1, "response_length/mean"] == 412.5
    run = read_run(import_verl(path, tmp_path / "out", experiment="v", n=7e9,
                               prompts_per_step=512))
    assert run.path.name == "train"
    assert run.steps["T"].tolist() == [1000, 2100, 3000]
    assert run.steps["D"].tolist() == [512, 1024, 1536]
    assert run.steps["clip_frac"].dropna().tolist() == [0.02]
    evals = run.evals.set_index(["eval_set", "step"])["pass1"]
    assert evals["openai/gsm8k"].to_dict() == {0: 0.512, 2: 0.53, 3: 0.55}  # acc preferred
    assert evals["math"].to_dict() == {0: 0.301, 2: 0.32}
    assert run.meta["primary_eval"] == "openai/gsm8k"
    (tmp_path / "bad.log").write_text("step:1 - critic/score/mean:0.1 - broken\n")
    with pytest.raises(DataError, match="line 1"):
        parse_verl_log(tmp_path / "bad.log")
    (tmp_path / "none.log").write_text("nothing to see\n")
    with pytest.raises(DataError, match="no VeRL metric lines"):
        parse_verl_log(tmp_path / "none.log")


def test_cli_import(tmp_path):
    path = tmp_path / "train.log"
    path.write_text(VERL_LOG)
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(path), "--format", "verl", "--out",
                                 str(tmp_path / "out"), "--experiment", "v", "--n", "7B",
                                 "--run-id", "qwen7b-s1"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "v" / "qwen7b-s1" / "meta.json").read_text())
    assert meta["N"] == 7e9 and meta["status"] == "finished"
    again = runner.invoke(app, ["import", str(path), "--format", "verl", "--out",
                                str(tmp_path / "out"), "--experiment", "v", "--n", "7B",
                                "--run-id", "qwen7b-s1"])
    assert again.exit_code == 2 and "already exists" in again.output
    missing_n = runner.invoke(app, ["import", str(path), "-f", "wandb", "--out",
                                    str(tmp_path / "o"), "--experiment", "v"])
    assert missing_n.exit_code == 2 and "--n" in missing_n.output
