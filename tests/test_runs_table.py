"""RunTable: many runs as one tidy table, the law table, and law-style CSVs."""

import pandas as pd
import pytest

from rlscale.errors import DataError, RunLogError
from rlscale.runs import LAW_COLUMNS, RunTable, RunWriter

SIZES = {"small": 1e6, "medium": 4e6, "large": 16e6}


def make_runs(root, *, primary="holdout", sizes=SIZES, steps=4):
    """Synthetic runs: two eval sets, evals at step 0 and every step, C = 6 N T."""
    for name, n in sizes.items():
        meta = {"experiment": "ladder", "N": n, "N_total": 2 * n, "seed": 0, "G": 4,
                "model": name}
        if primary:
            meta["primary_eval"] = primary
        with RunWriter(root / "ladder" / name, meta) as run:
            run.log_eval({"step": 0, "eval_set": "holdout", "pass1": 0.1, "n_problems": 20,
                          "samples": 4})
            run.log_eval({"step": 0, "eval_set": "gsm8k", "pass1": 0.05, "n_problems": 10,
                          "samples": 1})
            for step in range(1, steps + 1):
                tokens = 1000 * step
                run.log_step({"step": step, "D": 8 * step, "D_unique": 8 * step, "epoch": 0,
                              "T": tokens, "C": 6 * n * tokens, "flops": 7 * n * tokens,
                              "reward": 0.1 * step, "wall_time": 2.0 * step})
                run.log_eval({"step": step, "eval_set": "holdout", "pass1": 0.1 + step / 20,
                              "n_problems": 20, "samples": 4, "wall_time": 0.5})
                run.log_eval({"step": step, "eval_set": "gsm8k", "pass1": 0.05 + step / 40,
                              "n_problems": 10, "samples": 1})
    return root


def test_df_has_one_row_per_run_step_and_eval_set(tmp_path):
    table = RunTable.load(make_runs(tmp_path))
    df = table.df
    assert len(df) == 3 * 5 * 2
    assert not df.duplicated(["run", "step", "eval_set"]).any()
    at = (df.run == "ladder/medium") & (df.step == 3) & (df.eval_set == "holdout")
    row = df[at].iloc[0].to_dict()
    assert row["N"] == 4e6 and row["N_total"] == 8e6 and row["model"] == "medium"
    assert row["G"] == 4 and row["seed"] == 0 and row["experiment"] == "ladder"
    assert row["pass1"] == pytest.approx(0.25) and row["L"] == pytest.approx(0.75)
    assert row["D"] == 24 and row["T"] == 3000 and row["C"] == 6 * 4e6 * 3000
    assert row["wall_time"] == 6.0 and row["wall_time_eval"] == 0.5  # step vs eval wall time
    start = df[df.step == 0]
    assert (start[["D", "D_unique", "epoch", "T", "C", "flops"]] == 0).all().all()
    assert pd.isna(row["tau"]) and pd.isna(row["family"])  # meta keys a run lacks are missing
    assert len(table.steps) == 3 * 4 and {"run", "N", "reward"} <= set(table.steps.columns)


def test_law_table_uses_the_primary_eval_set(tmp_path):
    table = RunTable.load(make_runs(tmp_path))
    law = table.law_table()
    assert list(law.columns) == LAW_COLUMNS
    assert len(law) == 3 * 5
    assert law["N"].is_monotonic_increasing
    assert law.loc[law.step == 2, "L"].tolist() == pytest.approx([0.8] * 3)  # holdout's L
    gsm = table.law_table("gsm8k")
    assert gsm.loc[gsm.step == 2, "L"].tolist() == pytest.approx([0.9] * 3)
    with pytest.raises(RunLogError, match="'math500' is missing.*gsm8k"):
        table.law_table("math500")


def test_primary_eval_defaults_to_first_set_and_conflicts_are_named(tmp_path):
    make_runs(tmp_path / "a", primary=None)
    assert RunTable.load(tmp_path / "a").law_table().loc[1, "L"] == pytest.approx(0.85)
    make_runs(tmp_path / "b", primary="holdout", sizes={"x": 1e6})
    make_runs(tmp_path / "c", primary="gsm8k", sizes={"y": 2e6})
    mixed = RunTable.load([tmp_path / "b", tmp_path / "c"])
    with pytest.raises(RunLogError, match="disagree.*gsm8k.*holdout"):
        mixed.law_table()
    assert len(mixed.law_table("gsm8k")) == 10


def test_runs_without_size_or_with_clashing_ids_are_errors(tmp_path):
    with RunWriter(tmp_path / "e" / "r", {"experiment": "e"}) as run:
        run.log_eval({"step": 0, "eval_set": "h", "pass1": 0.5})
    with pytest.raises(RunLogError, match="without a model size"):
        RunTable.load(tmp_path).law_table()
    with RunWriter(tmp_path / "other" / "r", {"experiment": "e"}) as run:
        run.log_eval({"step": 0, "eval_set": "h", "pass1": 0.5})
    with pytest.raises(RunLogError, match="share the id 'e/r'"):
        RunTable.load(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunLogError, match="no run directories"):
        RunTable.load(tmp_path / "empty")


def test_csv_round_trip(tmp_path):
    table = RunTable.load(make_runs(tmp_path / "runs"))
    table.to_csv(tmp_path / "table.csv")
    back = RunTable.from_csv(tmp_path / "table.csv")
    pd.testing.assert_frame_equal(back.law_table(), table.law_table(), check_dtype=False)


def test_from_csv_law_style_and_errors(tmp_path):
    path = tmp_path / "law.csv"
    path.write_text("N,step,C,L\n5e8,1,1e16,0.9\n5e8,2,2e16,0.8\n1.5e9,1,3e16,0.85\n")
    law = RunTable.from_csv(path).law_table()
    assert law["run"].tolist() == ["N500M", "N500M", "N1.5B"]
    assert law["D"].isna().all() and law["L"].tolist() == [0.9, 0.8, 0.85]
    path.write_text("N,C\n5e8,1e16\n")
    with pytest.raises(DataError, match="field 'L'"):
        RunTable.from_csv(path)
    path.write_text("N,L\n5e8,0.9\n")
    with pytest.raises(DataError, match="C, D, T"):
        RunTable.from_csv(path)
    path.write_text("N,D,L\n5e8,512,0.9\n5e8,1024,oops\n")
    with pytest.raises(DataError, match="line 3.*field 'L'.*oops"):
        RunTable.from_csv(path)


def test_paper_digitized_curves_load_as_a_law_table(shared_data):
    table = RunTable.from_csv(shared_data / "paper" / "digitized_instruct_C.csv")
    law = table.law_table()
    assert law["N"].nunique() == 7 and law["run"].nunique() == 7
    assert law["C"].notna().all() and law["T"].isna().all()
