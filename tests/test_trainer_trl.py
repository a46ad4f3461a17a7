"""backend=trl: the same config through TRL's GRPOTrainer writes rlscale's run directory.

CPU, one thread, miniature models. The fast tests check the recipe mapping and one short run
(valid run directory, the accounting, the eval cadence, held-out pass@1 rising); the slow ones
compare against the native backend and SIGKILL a run and resume it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("trl")
pytest.importorskip("accelerate")

from rlscale.errors import ConfigError  # noqa: E402
from rlscale.models import build_model, build_tokenizer, save_model  # noqa: E402
from rlscale.rl.config import load_config  # noqa: E402
from rlscale.rl.trainer import train  # noqa: E402
from rlscale.rl.trl_backend import grpo_config, updates_per_step  # noqa: E402
from rlscale.runs import read_run  # noqa: E402
from rlscale.units import training_flops  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "smoke.yaml"
# The smoke recipe, shortened: 16 steps of 32 prompts x G=8, evaluated every 8 steps.
SHORT = ["backend=trl", "steps=16", "data.n_problems=512", "eval_every=8", "checkpoint_every=0",
         "threads=1"]
TINY = ["data.n_problems=600", "data.holdout_easy=6", "data.holdout_hard=6", "prompts_per_step=4",
        "mini_batch_prompts=2", "group_size=2", "max_response_tokens=12", "lr=3e-3",
        "eval_every=2", "reward_workers=1", "threads=1", "backend=trl"]


def test_the_recipe_maps_onto_grpo_config():
    cfg = load_config(SMOKE, ["backend=trl"])
    args = grpo_config(cfg, world=1)
    assert (args["learning_rate"], args["beta"], args["epsilon"], args["epsilon_high"]) == (
        5e-5, 0.001, 0.2, 0.2)
    assert (args["weight_decay"], args["max_grad_norm"], args["lr_scheduler_type"]) == (
        0.1, 1.0, "constant")
    assert args["loss_type"] == "dapo" and args["scale_rewards"] == "group"
    # 32 prompts x G=8 a step, mini-batches of 8 prompts: 4 updates of 64 sequences.
    assert (args["num_generations"], args["per_device_train_batch_size"],
            args["gradient_accumulation_steps"], args["steps_per_generation"]) == (8, 64, 1, 4)
    assert updates_per_step(cfg) == 4 and args["shuffle_dataset"] is False
    assert (args["temperature"], args["max_completion_length"], args["seed"]) == (1.0, 48, 0)
    assert args["warmup_steps"] == 0 and args["logging_steps"] == 1
    assert args["report_to"] == "none" and args["use_vllm"] is False

    # Memory splits and processes keep the update: 16 per pass x 2 processes x 2 accumulated.
    split = grpo_config(load_config(SMOKE, ["backend=trl", "micro_batch_sequences=16"]), world=2)
    assert (split["per_device_train_batch_size"], split["gradient_accumulation_steps"],
            split["steps_per_generation"]) == (16, 2, 8)
    assert grpo_config(load_config(SMOKE, ["loss_agg=seq-mean"]), world=1)["loss_type"] == "grpo"


@pytest.mark.parametrize("override, key", [
    ("kl_clamp=5", "kl_clamp"), ("adv_eps=1e-3", "adv_eps"), ("device=cuda:1", "device"),
    ("micro_batch_sequences=48", "micro_batch_sequences")])
def test_what_trl_cannot_express_is_refused_by_name(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        grpo_config(load_config(SMOKE, ["backend=trl", override]), world=1)


def test_use_vllm_needs_backend_trl_and_vllm():
    with pytest.raises(ConfigError, match="use_vllm"):
        load_config(SMOKE, ["use_vllm=true"])
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="vLLM is not installed"):
            grpo_config(load_config(SMOKE, ["backend=trl", "use_vllm=true"]), world=1)


def test_backend_default_keeps_the_config_hash():
    native = load_config(SMOKE)
    assert "backend" not in native.hashed_fields()
    assert load_config(SMOKE, ["backend=trl"]).config_hash() != native.config_hash()


def records(run_dir: Path):
    """The run read and validated by rlscale.runs.read_run, its steps and evals as dicts."""
    run = read_run(run_dir)
    return run, run.steps.to_dict("records"), run.evals.to_dict("records")


def holdout(run_dir: Path) -> list[dict]:
    return [e for e in records(run_dir)[2] if e["eval_set"] == "holdout"]


def test_trl_run_writes_a_valid_run_directory_and_pass1_rises(tmp_path):
    cfg = load_config(SMOKE, [*SHORT, f"out={tmp_path}"])
    run_dir = train(cfg, progress=False)
    run, steps, _ = records(run_dir)  # validated against the schema
    assert run.meta["status"] == "finished" and run.meta["config"]["backend"] == "trl"
    assert [s["step"] for s in steps] == list(range(1, 17))
    N = run.meta["N"]
    T = 0
    for s in steps:
        assert s["D"] == s["step"] * 32 and s["prompts"] == 32 and s["sequences"] == 256
        assert s["tokens"] == s["prompt_tokens"] + s["response_tokens"]
        T += s["tokens"]
        assert s["T"] == T
        assert s["C"] == pytest.approx(training_flops(N, T))
        assert s["C_step"] == pytest.approx(training_flops(N, s["tokens"]))
        assert s["updates"] == 4 and s["D_unique"] == s["D"]  # one pass, no reuse
        assert 0 <= s["reward"] <= 1 and s["lr"] == pytest.approx(5e-5)
    evals = holdout(run_dir)
    assert [e["step"] for e in evals] == [0, 8, 16]
    first, last = evals[0], evals[-1]
    noise = (first["stderr"] ** 2 + last["stderr"] ** 2) ** 0.5
    assert last["pass1"] - first["pass1"] >= 3 * noise, (first, last)
    assert (run_dir / "checkpoints").is_dir()


@pytest.mark.slow
def test_trl_and_native_agree_within_eval_noise(tmp_path):
    results = {}
    for backend in ("native", "trl"):
        cfg = load_config(SMOKE, [f"backend={backend}", f"out={tmp_path / backend}",
                                  "checkpoint_every=0", "eval_every=0", "threads=1"])
        results[backend] = holdout(train(cfg, progress=False))
    start = [r[0]["pass1"] for r in results.values()]
    assert start[0] == pytest.approx(start[1])  # the same model, eval seeds and estimator
    gains = {b: r[-1]["pass1"] - r[0]["pass1"] for b, r in results.items()}
    noise = sum(r[-1]["stderr"] ** 2 for r in results.values()) ** 0.5
    # Measured: gains 0.067 (native) and 0.070 (TRL), noise 0.0065.
    assert abs(gains["trl"] - gains["native"]) <= 4 * noise, (gains, noise)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "rand-130k"
    tokenizer = build_tokenizer()
    return save_model(build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer, path)


@pytest.mark.slow
def test_sigkilled_trl_run_resumes_with_nothing_lost_or_duplicated(model_dir, tmp_path):
    steps_total = 24
    args = [f"model={model_dir}", *TINY, f"steps={steps_total}", "checkpoint_every=3",
            f"out={tmp_path}"]
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    cmd = [sys.executable, "-m", "rlscale", "train", str(empty), *args, "--quiet"]
    run_dir = load_config(None, args).run_dir()
    env = {**os.environ, "RLSCALE_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    steps_file = run_dir / "steps.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        checkpoints = list((run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json"))
        if checkpoints and steps_file.exists() and steps_file.read_text().count("\n") >= 7:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()[-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = steps_file.read_text().splitlines()
    assert 7 <= len(before) < steps_total
    saved = [int(p.parent.name.removeprefix("checkpoint-")) for p in
             (run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")]
    kept = max(saved) // 2  # 2 optimizer steps (mini-batches) a step
    assert kept >= 3

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # The records up to the checkpoint are kept as they were (timings included), not redone.
    assert steps_file.read_text().splitlines()[:kept] == before[:kept]
    _, steps, evals = records(run_dir)
    assert [s["step"] for s in steps] == list(range(1, steps_total + 1))
    assert [s["D"] for s in steps] == [4 * k for k in range(1, steps_total + 1)]
    T = 0
    for s in steps:  # the accounting carries over the resume
        T += s["tokens"]
        assert s["T"] == T
    eval_steps = [(e["step"], e["eval_set"]) for e in evals]
    assert eval_steps == [(k, "holdout") for k in range(0, steps_total + 1, 2)]
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "finished" and "resumed" in meta
