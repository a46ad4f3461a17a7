"""Checkpoint and resume: an interrupted run continues to exactly the uninterrupted run's records."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlscale.errors import ConfigError
from rlscale.models import build_model, build_tokenizer, save_model
from rlscale.rl import trainer as trainer_module
from rlscale.rl.config import load_config
from rlscale.rl.trainer import TIMING_FIELDS, train

TINY = ["data.n_problems=600", "data.holdout_easy=6", "data.holdout_hard=6", "prompts_per_step=4",
        "mini_batch_prompts=2", "group_size=2", "max_response_tokens=12", "lr=3e-3",
        "eval_every=2", "reward_workers=1", "threads=1"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "rand-231k"
    tokenizer = build_tokenizer()
    return save_model(build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer, path)


def records(run_dir: Path) -> tuple[list[dict], list[dict]]:
    def read(name):
        lines = (run_dir / name).read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_FIELDS}
                for line in lines]
    return read("steps.jsonl"), read("evals.jsonl")


def config(model_dir, out, *extra):
    return load_config(None, [f"model={model_dir}", f"out={out}", *TINY, *extra])


def test_resume_after_a_crash_equals_the_uninterrupted_run(model_dir, tmp_path, monkeypatch):
    full = train(config(model_dir, tmp_path / "a", "steps=5", "checkpoint_every=2"),
                 progress=False)
    expected = records(full)
    assert [r["step"] for r in expected[0]] == [1, 2, 3, 4, 5]

    real_step = trainer_module.GRPOTrainer.step

    def crash_at_step_4(self, step, problems, verifier):
        if step == 4:
            raise RuntimeError("simulated crash")
        return real_step(self, step, problems, verifier)

    cfg = config(model_dir, tmp_path / "b", "steps=5", "checkpoint_every=2")
    with monkeypatch.context() as patch:
        patch.setattr(trainer_module.GRPOTrainer, "step", crash_at_step_4)
        with pytest.raises(RuntimeError, match="simulated"):
            train(cfg, progress=False)
    steps, _ = records(cfg.run_dir())
    assert [r["step"] for r in steps] == [1, 2, 3]  # step 3 logged after the step-2 checkpoint
    assert json.loads((cfg.run_dir() / "meta.json").read_text())["status"] == "failed"

    resumed = train(cfg, resume=True, progress=False)
    assert records(resumed) == expected
    assert json.loads((resumed / "meta.json").read_text())["status"] == "finished"


def test_resume_refuses_another_config_naming_the_keys(model_dir, tmp_path):
    train(config(model_dir, tmp_path, "steps=1"), progress=False)
    with pytest.raises(ConfigError, match=r"'lr'.*'seed'|'seed'.*'lr'") as info:
        train(config(model_dir, tmp_path, "steps=1", "lr=1e-3", "seed=0", "run_id=rand-231k_s0",
                     "data.seed=0", "seed=5"), resume=True, progress=False)
    assert "checkpoint" in str(info.value)


def test_resume_with_the_other_backend_is_refused_and_keeps_the_records(model_dir, tmp_path):
    """Each backend keeps its own checkpoints: the other would start over and wipe the logs."""
    run_dir = train(config(model_dir, tmp_path, "steps=1"), progress=False)
    before = (run_dir / "steps.jsonl").read_text()
    with pytest.raises(ConfigError, match="started with backend=native"):
        train(config(model_dir, tmp_path, "steps=1", "backend=trl"), resume=True, progress=False)
    assert (run_dir / "steps.jsonl").read_text() == before


def test_sigkill_then_resume_loses_and_duplicates_nothing(model_dir, tmp_path):
    args = [f"model={model_dir}", *TINY, "steps=40", "checkpoint_every=3"]
    expected = records(train(load_config(None, [*args, f"out={tmp_path / 'a'}"]),
                             progress=False))

    out = tmp_path / "b"
    cmd = [sys.executable, "-c", "from rlscale.cli import app; app()", "train", os.devnull,
           *args, f"out={out}", "--quiet"]
    cmd[4] = str(_empty_yaml(tmp_path))
    run_dir = load_config(None, [*args, f"out={out}"]).run_dir()
    env = {**os.environ, "RLSCALE_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        steps_file = run_dir / "steps.jsonl"
        if steps_file.exists() and steps_file.read_text().count("\n") >= 8:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = len(records(run_dir)[0])
    assert 8 <= killed_at < 40

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert records(run_dir) == expected


def _empty_yaml(folder: Path) -> Path:
    path = folder / "empty.yaml"
    path.write_text("{}\n")
    return path
