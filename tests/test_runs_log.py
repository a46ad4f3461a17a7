"""Run log: writer/reader round trip, crash recovery (SIGKILL), atomic meta, resume."""

import json
import math
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rlscale.errors import RunLogError
from rlscale.runs import RunWriter, TruncatedRecordWarning, find_runs, read_jsonl, read_run
from rlscale.runs import log as runlog


def write_run(run_dir, steps=3, meta=None):
    with RunWriter(run_dir, meta or {"experiment": "e", "N": 1e6}) as run:
        run.log_eval({"step": 0, "eval_set": "holdout", "pass1": 0.0, "n_problems": 4})
        for step in range(1, steps + 1):
            run.log_step({"step": step, "D": 8 * step, "T": 100 * step})
            run.log_eval({"step": step, "eval_set": "holdout", "pass1": step / 10, "n_problems": 4})
    return run


def test_round_trip_with_nonfinite_values_and_numpy_scalars(tmp_path):
    run_dir = tmp_path / "exp" / "r1"
    with RunWriter(run_dir, {"experiment": "exp", "N": np.float64(2e6), "seed": np.int64(3)}) as w:
        w.log_step({"step": np.int64(1), "D": np.int64(8), "kl": float("nan"),
                    "grad_norm": float("inf"), "entropy": -math.inf, "note": "ok"})
        w.log_eval({"step": 1, "eval_set": "holdout", "pass1": 0.25, "n_problems": 8})
    run = read_run(run_dir)
    assert run.meta["status"] == "finished"
    assert run.meta["N"] == 2e6 and run.meta["seed"] == 3 and run.meta["run_id"] == "r1"
    assert set(run.meta["versions"]) == {"python", "torch", "transformers", "rlscale"}
    step = run.steps.iloc[0]
    assert step["step"] == 1 and step["D"] == 8 and step["note"] == "ok"
    assert math.isnan(step["kl"]) and step["grad_norm"] == math.inf and step["entropy"] == -math.inf
    assert run.evals.iloc[0]["L"] == pytest.approx(0.75)  # filled in as 1 - pass1
    assert find_runs(tmp_path) == [run_dir]


def test_refuses_to_overwrite_and_rejects_bad_records(tmp_path):
    write_run(tmp_path / "r")
    with pytest.raises(RunLogError, match="already exists"):
        RunWriter(tmp_path / "r", {})
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "steps.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(RunLogError, match="without a meta.json"):
        RunWriter(tmp_path / "stale", {})
    with RunWriter(tmp_path / "s", {}) as run:
        run.log_step({"step": 1})
        with pytest.raises(RunLogError, match="not after"):
            run.log_step({"step": 1})
        with pytest.raises(RunLogError, match="'step'"):
            run.log_step({"step": 2.5})
        run.log_eval({"step": 1, "eval_set": "a", "pass1": 0.5})
        with pytest.raises(RunLogError, match="already logged"):
            run.log_eval({"step": 1, "eval_set": "a", "pass1": 0.5})
        with pytest.raises(RunLogError, match="'pass1'"):
            run.log_eval({"step": 2, "eval_set": "a"})
        with pytest.raises(RunLogError, match="field 'blob'"):
            run.log_step({"step": 3, "blob": object()})
    assert len(read_run(tmp_path / "s").steps) == 1


def test_exception_marks_run_failed_and_keeps_records(tmp_path):
    with pytest.raises(ZeroDivisionError), RunWriter(tmp_path / "r", {"N": 1.0}) as run:
        run.log_step({"step": 1, "D": 4})
        1 / 0  # noqa: B018
    back = read_run(tmp_path / "r")
    assert back.meta["status"] == "failed" and "ZeroDivisionError" in back.meta["error"]
    assert back.steps["D"].tolist() == [4]


def test_update_meta_is_atomic(tmp_path, monkeypatch):
    run = RunWriter(tmp_path / "r", {"N": 1.0})
    run.update_meta(checkpoint_step=1)

    def crash(*args):
        raise OSError("power cut before the rename")

    monkeypatch.setattr(runlog.os, "replace", crash)
    with pytest.raises(OSError):
        run.update_meta(checkpoint_step=2)
    monkeypatch.undo()
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["checkpoint_step"] == 1  # the old version, whole
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "evals.jsonl", "meta.json", "steps.jsonl"]  # no temp file left behind
    run.finish()


def test_truncate_after_and_resume(tmp_path):
    write_run(tmp_path / "r", steps=5)
    with RunWriter(tmp_path / "r", {"resumed_from": 3}, resume=True) as run:
        run.truncate_after(3)
        for step in (4, 5):
            run.log_step({"step": step, "D": 1000 + step})
            run.log_eval({"step": step, "eval_set": "holdout", "pass1": 0.9})
    back = read_run(tmp_path / "r")
    assert back.steps["step"].tolist() == [1, 2, 3, 4, 5]
    assert back.steps["D"].tolist() == [8, 16, 24, 1004, 1005]
    assert back.evals["step"].tolist() == [0, 1, 2, 3, 4, 5]
    assert back.meta["resumed_from"] == 3 and back.meta["status"] == "finished"
    assert back.meta["experiment"] == "e"  # the original meta survives a resume


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    write_run(tmp_path / "r", steps=3)
    path = tmp_path / "r" / "steps.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:10] + "#garbage"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunLogError, match=r"steps\.jsonl: line 2"):
        read_jsonl(path)
    with pytest.raises(RunLogError, match="line 2"):
        read_run(tmp_path / "r")


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "D"')
    with pytest.warns(TruncatedRecordWarning, match="line 3"):
        assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    path.write_text('{"step": 1}\n{"step": 2, "D\n')  # newline written, JSON not finished
    with pytest.warns(TruncatedRecordWarning, match="line 2"):
        assert [r["step"] for r in read_jsonl(path)] == [1]


CHILD = textwrap.dedent("""
    import os, sys, time
    from rlscale.runs import RunWriter
    run = RunWriter(sys.argv[1], {"N": 1.0})
    for step in range(1, 10**6):
        run.log_step({"step": step, "D": step * 8, "payload": "x" * 200})
        run.update_meta(last_step=step)
        if step == int(sys.argv[2]):  # then die in the middle of writing the next line
            with open(run.steps_path, "a") as f:
                f.write('{"step": %d, "D": ' % (step + 1))
                f.flush()
                os.fsync(f.fileno())
            print("torn", flush=True)
            time.sleep(60)
        print(step, flush=True)
""")


def run_child_until(run_dir, tear_at, kill_after):
    """Start a writer process; SIGKILL it once it has confirmed `kill_after` records."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run_dir), str(tear_at)],
                             stdout=subprocess.PIPE, text=True)
    confirmed = 0
    try:
        for line in child.stdout:
            if line.strip() == "torn":
                break
            confirmed = int(line)
            if confirmed >= kill_after:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return confirmed


def test_sigkill_mid_run_loses_no_complete_record(tmp_path):
    confirmed = run_child_until(tmp_path / "r", tear_at=-1, kill_after=25)
    run = read_run(tmp_path / "r")
    steps = run.steps["step"].tolist()
    assert len(steps) >= confirmed >= 25
    assert steps == list(range(1, len(steps) + 1))
    assert run.meta["status"] == "running"  # the crash is visible: never marked finished
    assert confirmed <= run.meta["last_step"] <= len(steps)


def test_sigkill_while_writing_a_line_then_resume(tmp_path):
    run_child_until(tmp_path / "r", tear_at=12, kill_after=10**6)
    path = tmp_path / "r" / "steps.jsonl"
    with pytest.warns(TruncatedRecordWarning):
        steps = [r["step"] for r in read_jsonl(path)]
    assert steps == list(range(1, 13))
    # Resuming repairs the torn tail so that new records do not land after half a line.
    with RunWriter(tmp_path / "r", {}, resume=True) as run:
        run.log_step({"step": 13, "D": 104})
    assert [r["step"] for r in read_jsonl(path)] == list(range(1, 14))
