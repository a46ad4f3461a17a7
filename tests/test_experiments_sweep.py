"""Experiment specs and executors: a tiny sweep through the local and Ray executors, and the
resume of an interrupted sweep, all with the real trainer on a freshly built tiny model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rlscale.errors import ConfigError
from rlscale.experiments import LocalExecutor, RayExecutor, expand, load_spec, run_state
from rlscale.experiments.spec import validate_runs
from rlscale.models import build_model, build_tokenizer, ladder_names
from rlscale.runs import RunTable, read_run


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """The smallest ladder architecture, randomly initialised: no warm start needed."""
    path = tmp_path_factory.mktemp("model") / "tiny"
    tokenizer = build_tokenizer()
    build_model(ladder_names()[0], seed=0, tokenizer=tokenizer).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_spec(tmp_path: Path, model: Path, grid: dict, steps: int = 2, name: str = "tiny") -> Path:
    base = {
        "model": str(model), "variant": "base",
        "data": {"source": "arithmetic", "tiers": [1], "n_problems": 256,
                 "holdout_easy": 8, "holdout_hard": 0},
        "steps": steps, "prompts_per_step": 4, "group_size": 2, "mini_batch_prompts": 4,
        "max_prompt_tokens": 16, "max_response_tokens": 8,
        "lr": 1e-3, "eval_every": 1, "checkpoint_every": 1, "reward_workers": 1,
    }
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    spec = {"name": name, "base": "base.yaml", "grid": grid}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_expansion_is_deterministic_and_named(tmp_path, tiny_model):
    path = write_spec(tmp_path, tiny_model, {"seed": [0, 1], "group_size": [2, 4]})
    spec, spec_dir = load_spec(path)
    runs = expand(spec, spec_dir)
    assert [r.run_id for r in runs] == ["s0_G2", "s0_G4", "s1_G2", "s1_G4"]
    assert [r.run_id for r in expand(*load_spec(path))] == [r.run_id for r in runs]
    config = runs[3].config(tmp_path / "root", threads=1)
    assert (config.seed, config.group_size, config.experiment, config.run_id) == (1, 4, "tiny", "s1_G4")
    assert config.out == str(tmp_path / "root")


def test_bad_keys_are_named(tmp_path, tiny_model):
    path = write_spec(tmp_path, tiny_model, {"not_a_key": [1, 2]})
    runs = expand(*load_spec(path))
    with pytest.raises(ConfigError, match="not_a_key"):
        validate_runs(runs, path)
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(yaml.safe_dump({"name": "x", "base": "base.yaml", "gird": {}}))
    with pytest.raises(ConfigError, match="gird"):
        load_spec(bad_spec)
    bad_spec.write_text(yaml.safe_dump({"name": "x", "base": "base.yaml", "grid": {"seed": []}}))
    with pytest.raises(ConfigError, match="'seed'"):
        load_spec(bad_spec)


def test_local_and_ray_executors_fill_one_run_root(tmp_path, tiny_model):
    pytest.importorskip("ray")
    root = tmp_path / "runs"
    local_runs = expand(*load_spec(write_spec(tmp_path, tiny_model, {"seed": [0, 1]}, name="tiny")))
    summary = LocalExecutor(workers=1).run(local_runs, root)
    assert [o.status for o in summary.outcomes] == ["finished", "finished"], summary.failed

    ray_runs = expand(*load_spec(write_spec(tmp_path, tiny_model, {"seed": [2, 3]}, name="tinyray")))
    import ray

    try:
        summary = RayExecutor(num_cpus=2, threads=1).run(ray_runs, root)
    finally:
        ray.shutdown()
    assert [o.status for o in summary.outcomes] == ["finished", "finished"], summary.failed

    table = RunTable.load(root)
    assert sorted(table.df["run_id"].unique()) == ["s0", "s1", "s2", "s3"]
    for run_dir in sorted(root.glob("*/*")):
        run = read_run(run_dir)
        assert run.meta["status"] == "finished"
        assert list(run.steps["step"]) == [1, 2]


STEPS = 40


def test_interrupted_sweep_resumes_and_skips_finished(tmp_path, tiny_model):
    root = tmp_path / "runs"
    path = write_spec(tmp_path, tiny_model, {"seed": [0, 1]}, steps=STEPS)
    runs = expand(*load_spec(path))
    first, second = runs
    LocalExecutor().run([first], root)
    finished_dir = root / "tiny" / "s0"
    mtimes = {p: p.stat().st_mtime_ns for p in finished_dir.rglob("*") if p.is_file()}

    # Start the second run as its own process and SIGKILL it once a checkpoint exists.
    second_dir = root / "tiny" / "s1"
    args = [f"{k}={v}" for k, v in (("out", root), ("experiment", "tiny"), ("run_id", "s1"),
                                    ("seed", 1), ("threads", 1))]
    proc = subprocess.Popen([sys.executable, "-m", "rlscale.cli", "train", str(tmp_path / "base.yaml"),
                             f"steps={STEPS}", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "RLSCALE_THREADS": "1"})
    deadline = time.time() + 120
    steps_log = second_dir / "steps.jsonl"
    while time.time() < deadline and not (
            steps_log.exists() and steps_log.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_state(second_dir) == "interrupted"
    steps_before = len(read_run(second_dir).steps)
    assert 2 <= steps_before < STEPS

    summary = LocalExecutor().run(runs, root)
    assert [o.status for o in summary.outcomes] == ["skipped", "resumed"], summary.failed
    assert {p: p.stat().st_mtime_ns for p in finished_dir.rglob("*") if p.is_file()} == mtimes
    resumed = read_run(second_dir)
    assert resumed.meta["status"] == "finished"
    assert list(resumed.steps["step"]) == list(range(1, STEPS + 1))  # no lost, no duplicated records
    assert json.loads((second_dir / "meta.json").read_text())["run_id"] == "s1"


def test_grid_values_that_set_several_keys_together(tmp_path, tiny_model):
    path = write_spec(tmp_path, tiny_model, {
        "size": [{"id": "small", "group_size": 2, "lr": 1e-3}, {"id": "big", "group_size": 4, "lr": 1e-4}],
        "data.reuse_tau": [1, 2],
    })
    runs = expand(*load_spec(path))
    assert [r.run_id for r in runs] == ["small_tau1", "small_tau2", "big_tau1", "big_tau2"]
    config = runs[3].config(tmp_path)
    assert (config.group_size, config.lr, config.data.reuse_tau) == (4, 1e-4, 2)
