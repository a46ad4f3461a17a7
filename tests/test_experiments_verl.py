"""`rlscale sweep SPEC --emit verl`: VeRL's data files in the trainer's own prompt order, the
paper's recipe as VeRL overrides (checked against VeRL's Hydra config where verl is importable),
and `rlscale import DIR --format verl` bringing every launched run back."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from rlscale.cli import app
from rlscale.data import reuse_schedule
from rlscale.data.arithmetic import arithmetic_problems
from rlscale.errors import ConfigError
from rlscale.experiments import expand, load_spec
from rlscale.experiments.verl import (
    RAW_CHAT_TEMPLATE,
    RUN_DIR,
    VERL_SCHEMA,
    emit_verl,
    format_overrides,
    verl_recipe,
)
from rlscale.rl.trainer import load_run_data
from rlscale.runs import read_run

REPO = Path(__file__).resolve().parents[1]
LADDER_SPEC = REPO / "configs" / "qwen2.5" / "exp1_ladder.yaml"
SIZES = ("0.5B", "1.5B", "3B", "7B", "14B", "32B", "72B")

# The paper's recipe (docs/scaling-out.md), as the 7B run's launch must pass it to VeRL.
RECIPE_7B = [
    "algorithm.adv_estimator=grpo",
    "algorithm.norm_adv_by_std_in_grpo=True",
    "data.train_batch_size=512",
    "data.max_prompt_length=2048",
    "data.max_response_length=4096",
    "data.shuffle=False",
    "actor_rollout_ref.model.path=/models/Qwen2.5-7B",
    "actor_rollout_ref.rollout.n=8",
    "actor_rollout_ref.rollout.temperature=1.0",
    "actor_rollout_ref.actor.ppo_mini_batch_size=128",
    "actor_rollout_ref.actor.ppo_epochs=1",
    "actor_rollout_ref.actor.optim.lr=1e-6",
    "actor_rollout_ref.actor.optim.weight_decay=0.1",
    "actor_rollout_ref.actor.grad_clip=1.0",
    "actor_rollout_ref.actor.use_kl_loss=True",
    "actor_rollout_ref.actor.kl_loss_coef=0.001",
    "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
    "actor_rollout_ref.actor.clip_ratio=0.2",
    "actor_rollout_ref.actor.clip_ratio_low=0.2",
    "actor_rollout_ref.actor.clip_ratio_high=0.2",
    "actor_rollout_ref.actor.loss_agg_mode=token-mean",
    "actor_rollout_ref.actor.entropy_coeff=0.0",
    "actor_rollout_ref.rollout.val_kwargs.do_sample=True",
    "actor_rollout_ref.rollout.val_kwargs.temperature=0.7",
    "actor_rollout_ref.rollout.val_kwargs.n=1",
    "trainer.logger=[console,file]",
    "trainer.project_name=qwen2.5_exp1_ladder",
    "trainer.experiment_name=7B_s0",
    "trainer.total_epochs=1",
    "trainer.total_training_steps=2",
    "trainer.val_before_train=True",
    "trainer.test_freq=1",
    f"reward.custom_reward_function.path='{RUN_DIR}/reward.py'",
    "reward.custom_reward_function.name=compute_score",
    f"data.train_files='{RUN_DIR}/train.parquet'",
    f"data.val_files=['{RUN_DIR}/val.parquet','{RUN_DIR}/eval_gsm8k.parquet']",
]


def write_tiny_spec(tmp_path: Path, **changes) -> Path:
    """The built-in task on a shipped miniature model, two runs (tau = 1 and 2)."""
    base = {
        "model": "mini-130k", "dtype": "bfloat16", "nominal_n": 1.3e5,
        "data": {"source": "arithmetic", "n_problems": 64, "holdout_easy": 4, "holdout_hard": 4,
                 "order": "curriculum"},
        "steps": 4, "prompts_per_step": 8, "group_size": 4, "mini_batch_prompts": 4,
        "max_prompt_tokens": 32, "max_response_tokens": 48, "lr": 5e-5, "eval_every": 2,
        **changes,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny_verl", "base": base,
                                    "grid": {"data.reuse_tau": [1, 2]}}, sort_keys=False))
    return path


def write_guru_like(folder: Path, n_train: int = 1100, n_holdout: int = 10) -> dict[str, Path]:
    """Small files in the guru/VeRL schema the paper's config reads (chat prompts, pass rates)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def table(n: int, start: int, split: str) -> pa.Table:
        return pa.Table.from_pylist([{
            "data_source": "math", "ability": "math",
            "prompt": [{"content": f"Problem {start + i}: what is {start + i} + 1?", "role": "user"}],
            "reward_model": {"ground_truth": str(start + i + 1), "style": "rule"},
            "extra_info": {"index": start + i, "split": split,
                           "qwen2.5_7b_pass_rate": float(rng.uniform())},
        } for i in range(n)])

    files = {"source": folder / "math_train.parquet", "holdout": folder / "holdout.parquet",
             "gsm8k": folder / "gsm8k.parquet"}
    pq.write_table(table(n_train, 0, "train"), files["source"])
    pq.write_table(table(n_holdout, 10_000, "test"), files["holdout"])
    pq.write_table(table(5, 20_000, "test"), files["gsm8k"])
    return files


def launch_argv(run_dir: Path, *extra: str) -> list[str]:
    """What launch.sh hands to `python3 -m verl.trainer.main_ppo` (a stand-in python records it)."""
    fake = run_dir.parent / "fake_python"
    fake.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    "json.dump(sys.argv[1:], open(os.environ['ARGS_OUT'], 'w'))\n")
    fake.chmod(0o755)
    out = run_dir.parent / f"{run_dir.name}.argv.json"
    env = dict(os.environ, PYTHON=str(fake), ARGS_OUT=str(out))
    subprocess.run(["bash", str(run_dir / "launch.sh"), *extra], check=True, env=env,
                   capture_output=True, timeout=60)
    (run_dir / "console.log").unlink()
    argv = json.loads(out.read_text())
    assert argv[:2] == ["-m", "verl.trainer.main_ppo"]
    return argv[2:]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    spec = write_tiny_spec(folder)
    return spec, emit_verl(spec, folder / "emit")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    """The Qwen2.5 ladder spec emitted through the CLI, on small stand-ins for its data files."""
    folder = tmp_path_factory.mktemp("ladder")
    files = write_guru_like(folder / "data")
    out = folder / "emit"
    result = CliRunner().invoke(app, [
        "sweep", str(LADDER_SPEC), "--emit", "verl", "--out", str(out),
        f"data.source={files['source']}", f"data.holdout={files['holdout']}",
        f"data.eval_sets={{gsm8k: {files['gsm8k']}}}"])
    assert result.exit_code == 0, result.output
    return out


# --- data ---------------------------------------------------------------------------------


def test_train_file_is_the_trainers_schedule_in_verls_schema(tiny):
    spec, emitted = tiny
    assert [r.run_id for r in emitted] == ["tau1", "tau2"]
    for run, run_spec in zip(emitted, expand(*load_spec(spec)), strict=True):
        config = run_spec.config(run.run_dir.parent)
        data = load_run_data(config)  # the trainer's own schedule and eval sets
        train = pq.read_table(run.run_dir / "train.parquet")
        assert train.schema.equals(VERL_SCHEMA)
        rows = train.to_pylist()
        assert [r["extra_info"]["id"] for r in rows] == [p.id for p in data.schedule]
        assert [r["extra_info"]["step"] for r in rows] == [i // 8 + 1 for i in range(32)]
        assert [r["extra_info"]["index"] for r in rows] == list(range(32))
        for row, problem in zip(rows, data.schedule, strict=True):
            assert row["prompt"] == [{"content": problem.prompt, "role": "user"}]
            assert row["reward_model"] == {"ground_truth": problem.answer, "style": "rule"}
            assert row["ability"] == "math" and row["extra_info"]["split"] == "train"
        val = pq.read_table(run.run_dir / "val.parquet")
        assert val.schema.equals(VERL_SCHEMA)
        assert [r["extra_info"]["id"] for r in val.to_pylist()] == \
            [p.id for p in data.eval_sets["holdout"]]
        assert {r["data_source"] for r in val.to_pylist()} == {"holdout"}
        assert (run.steps, run.train_rows, run.eval_rows) == (4, 32, {"holdout": 8})

    # Independently of the trainer: the first 32 curriculum problems, and for tau = 2 a
    # 16-problem subset of them run easy -> hard twice.
    problems = arithmetic_problems(64, seed=0, split="train")
    ids = [pq.read_table(r.run_dir / "train.parquet").column("extra_info").to_pylist()
           for r in emitted]
    for tau, rows in zip((1, 2), ids, strict=True):
        expected = reuse_schedule(problems, total=32, tau=tau, seed=0, order="curriculum")
        assert [r["id"] for r in rows] == [p.id for p in expected]
    assert [r["id"] for r in ids[1][:16]] == [r["id"] for r in ids[1][16:]]
    assert len({r["id"] for r in ids[1]}) == 16 == emitted[1].distinct_prompts


def test_tiny_launch_feeds_text_prompts_raw_to_the_shipped_weights(tiny):
    _, emitted = tiny
    run = json.loads((emitted[0].run_dir / "run.json").read_text())
    assert Path(run["model_path"]).is_dir() and (Path(run["model_path"]) / "config.json").is_file()
    assert run["raw_prompts"] is True and run["run_keys"]["tau"] == 1
    assert run["config"]["data"]["reuse_tau"] == 1 and run["N"] == 1.3e5
    overrides = dict(item.split("=", 1) for item in run["overrides"])
    assert overrides["actor_rollout_ref.model.custom_chat_template"] == f'"{RAW_CHAT_TEMPLATE}"'
    assert overrides["trainer.test_freq"] == "2" and overrides["trainer.total_training_steps"] == "4"
    assert overrides["data.train_batch_size"] == "8" and overrides["actor_rollout_ref.rollout.n"] == "4"
    # micro-batches divide the 4 x 4 / 8 = 2 sequences per GPU of a mini-batch
    assert overrides["actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"] == "2"
    assert os.access(emitted[0].launch, os.X_OK)


# --- the recipe ---------------------------------------------------------------------------


def test_qwen_ladder_launch_carries_the_recipe(ladder):
    manifest = json.loads((ladder / "verl_sweep.json").read_text())
    assert manifest["runs"] == [f"{size}_s{seed}" for size in SIZES for seed in range(3)]
    run_dir = ladder / "7B_s0"
    record = json.loads((run_dir / "run.json").read_text())
    overrides = record["overrides"]
    missing = [item for item in RECIPE_7B if item not in overrides]
    assert not missing, missing
    assert len({item.split("=", 1)[0] for item in overrides}) == len(overrides)  # no key twice
    assert record["steps"] == 2 and record["N"] == 7e9 and record["raw_prompts"] is False
    assert not any("custom_chat_template" in item for item in overrides)  # the model's template

    # The script passes exactly these, $RUN_DIR expanded, then the caller's own arguments.
    if shutil.which("bash") is None:
        pytest.skip("no bash to run launch.sh")
    argv = launch_argv(run_dir, "trainer.nnodes=2")
    assert argv == [o.replace(RUN_DIR, str(run_dir)) for o in overrides] + ["trainer.nnodes=2"]
    text = (run_dir / "launch.sh").read_text()
    assert "export VERL_FILE_LOGGER_PATH=\"$RUN_DIR/verl_metrics.jsonl\"" in text

    by_size = {size: dict(item.split("=", 1) for item in
                          json.loads((ladder / f"{size}_s1" / "run.json").read_text())["overrides"])
               for size in ("0.5B", "72B")}
    assert by_size["72B"]["actor_rollout_ref.model.path"] == "/models/Qwen2.5-72B"
    assert by_size["72B"]["actor_rollout_ref.rollout.tensor_model_parallel_size"] == "8"
    assert by_size["0.5B"]["trainer.experiment_name"] == "0.5B_s1"  # Hydra: a string
    assert by_size["0.5B"]["actor_rollout_ref.rollout.seed"] == "1000"


def _verl_config_dir() -> Path:
    spec = importlib.util.find_spec("verl")  # found without importing verl (heavy, GPU deps)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("verl is not installed")
    folder = Path(list(spec.submodule_search_locations)[0]) / "trainer" / "config"
    if not (folder / "ppo_trainer.yaml").is_file():
        pytest.skip(f"no ppo_trainer.yaml in {folder}")
    return folder


def _compose(overrides: list[str]):
    folder = _verl_config_dir()
    try:
        from hydra import compose, initialize_config_dir
    except ImportError:
        pytest.skip("hydra-core is not installed (VeRL's config loader)")
    with initialize_config_dir(config_dir=str(folder), version_base=None):
        return compose("ppo_trainer", overrides=overrides)  # unknown keys raise here


@pytest.mark.filterwarnings("ignore")
def test_overrides_are_keys_of_verls_own_config(ladder):
    run_dir = ladder / "7B_s0"
    overrides = json.loads((run_dir / "run.json").read_text())["overrides"]
    cfg = _compose([o.replace(RUN_DIR, str(run_dir)) for o in overrides])
    assert cfg.data.train_batch_size == 512 and cfg.actor_rollout_ref.rollout.n == 8
    assert cfg.actor_rollout_ref.actor.ppo_mini_batch_size == 128
    assert cfg.actor_rollout_ref.actor.optim.lr == 1e-6
    assert cfg.actor_rollout_ref.actor.kl_loss_type == "low_var_kl"
    assert cfg.actor_rollout_ref.actor.loss_agg_mode == "token-mean"
    assert list(cfg.trainer.logger) == ["console", "file"]
    assert cfg.trainer.experiment_name == "7B_s0"
    assert cfg.reward.custom_reward_function.path == str(run_dir / "reward.py")
    assert list(cfg.data.val_files) == [str(run_dir / "val.parquet"),
                                        str(run_dir / "eval_gsm8k.parquet")]
    logger_path = cfg.ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH
    assert logger_path == str(run_dir / "verl_metrics.jsonl")
    small = ladder / "0.5B_s1"
    small_cfg = _compose([o.replace(RUN_DIR, str(small)) for o in
                          json.loads((small / "run.json").read_text())["overrides"]])
    assert small_cfg.trainer.experiment_name == "0.5B_s1"  # a string, not the number 0.5


@pytest.mark.filterwarnings("ignore")
def test_verls_own_config_checks_accept_the_launch(ladder):
    """VeRL's validate_config (what main_ppo runs first): batch sizes against the GPUs,
    micro-batches, the reference model for the KL loss, sampling settings."""
    run_dir = ladder / "7B_s0"
    overrides = json.loads((run_dir / "run.json").read_text())["overrides"]
    cfg = _compose([o.replace(RUN_DIR, str(run_dir)) for o in overrides])
    try:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import omega_conf_to_dataclass, validate_config
    except Exception as error:  # verl without its runtime dependencies (torch, tensordict, ...)
        pytest.skip(f"verl's config checks cannot be imported here: {error}")
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg),
                    use_critic=need_critic(cfg))
    assert need_reference_policy(cfg) and not need_critic(cfg)
    actor = omega_conf_to_dataclass(cfg.actor_rollout_ref.actor)
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert (actor.ppo_mini_batch_size, actor.loss_agg_mode, actor.kl_loss_type) == \
        (128, "token-mean", "low_var_kl")
    assert (rollout.n, rollout.val_kwargs.temperature, rollout.seed) == (8, 0.7, 0)


def test_legacy_verl_keys_and_unexpressible_configs(tiny):
    spec, _ = tiny
    config = expand(*load_spec(spec))[0].config("runs")
    legacy = format_overrides(verl_recipe(config, n_steps=4, model_path="/m", verl_version="0.6"))
    assert f"custom_reward_function.path='{RUN_DIR}/reward.py'" in legacy
    assert not any(o.startswith(("reward.", "actor_rollout_ref.rollout.seed", "++")) for o in legacy)
    for change, field in ((dict(dtype="float32"), "dtype"),
                          (dict(eval_estimator="canonical"), "eval_estimator"),
                          (dict(kl_clamp=5.0), "kl_clamp"),
                          (dict(steps=100), "steps")):  # 800 prompts from 64 problems
        (spec.parent / field).mkdir()
        bad = write_tiny_spec(spec.parent / field, **change)
        with pytest.raises(ConfigError, match=f"run 'tau1': .*key '{field}'"):
            emit_verl(bad, spec.parent / field / "emit")
        assert not (spec.parent / field / "emit").exists()  # refused before writing anything


# --- back from VeRL -----------------------------------------------------------------------


def _file_logger_lines(steps: range, *, eval_every: int, score: float) -> list[str]:
    """Records as VeRL's FileLogger writes them: {"step": N, "data": {metric: value}}."""
    lines = []
    for step in steps:
        data = {}
        if step:
            data |= {"critic/score/mean": score + 0.01 * step, "response_length/mean": 20.0,
                     "perf/total_num_tokens": 1000 + step, "actor/pg_loss": -0.1,
                     "actor/kl_loss": 0.001 * step, "training/epoch": 0, "timing_s/step": 1.5}
        if step % eval_every == 0:
            data["val-core/holdout/acc/mean@1"] = score + 0.05 * step
            data["val-aux/holdout/timed_out/mean@1"] = 0.0
        lines.append(json.dumps({"step": step, "data": data}))
    return lines


def test_import_brings_every_launched_run_back(tiny, tmp_path):
    spec, emitted = tiny
    emit_dir = tmp_path / "emit"
    shutil.copytree(emitted[0].run_dir.parent, emit_dir)
    first, second = emit_dir / "tau1", emit_dir / "tau2"
    # tau1 was resumed once: launch.sh set the first attempt's log aside.
    (first / "verl_metrics.20260101T000000.part.jsonl").write_text(
        "\n".join(_file_logger_lines(range(0, 3), eval_every=2, score=0.0)) + "\n")
    (first / "verl_metrics.jsonl").write_text(
        "\n".join(_file_logger_lines(range(2, 5), eval_every=2, score=0.0)) + "\n")
    (second / "verl_metrics.jsonl").write_text(
        "\n".join(_file_logger_lines(range(0, 5), eval_every=2, score=0.3)) + "\n")

    result = CliRunner().invoke(app, ["import", str(emit_dir), "--format", "verl",
                                      "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    for run_id, tau in (("tau1", 1), ("tau2", 2)):
        run = read_run(tmp_path / "runs" / "tiny_verl" / run_id)
        assert list(run.steps["step"]) == [1, 2, 3, 4]
        assert list(run.steps["D"]) == [8, 16, 24, 32]
        assert run.steps["C"].iloc[-1] == pytest.approx(6 * 1.3e5 * sum(1000 + s for s in range(1, 5)))
        assert list(run.evals["step"]) == [0, 2, 4] and set(run.evals["eval_set"]) == {"holdout"}
        assert (run.meta["N"], run.meta["tau"], run.meta["seed"], run.meta["G"]) == (1.3e5, tau, 0, 4)
        assert run.meta["primary_eval"] == "holdout"

    # One run's folder: just that run; a folder with nothing launched: a clear refusal.
    one = CliRunner().invoke(app, ["import", str(second), "-f", "verl", "--out",
                                   str(tmp_path / "one"), "--experiment", "again"])
    assert one.exit_code == 0, one.output
    assert (tmp_path / "one" / "again" / "tau2" / "meta.json").is_file()
    none = CliRunner().invoke(app, ["import", str(emitted[0].run_dir.parent), "-f", "verl",
                                    "--out", str(tmp_path / "none")])
    assert none.exit_code == 2 and "no run has VeRL metrics yet" in none.output
    wrong = CliRunner().invoke(app, ["import", str(emit_dir), "-f", "csv", "--out",
                                     str(tmp_path / "csv")])
    assert wrong.exit_code == 2 and "--format verl" in wrong.output


def test_emitted_reward_function_scores_like_the_trainer(tiny):
    _, emitted = tiny
    spec = importlib.util.spec_from_file_location("emitted_reward", emitted[0].run_dir / "reward.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    right = module.compute_score("holdout", "37+36=73,\\boxed{73}", "73", extra_info={})
    wrong = module.compute_score("holdout", "37+36=72,\\boxed{72}", "73")
    assert right == {"score": 1.0, "acc": 1.0, "timed_out": 0.0}
    assert wrong["score"] == 0.0 and module.compute_score("x", "no box", "73")["score"] == 0.0


def test_unknown_engine_is_refused(tiny, tmp_path):
    spec, _ = tiny
    result = CliRunner().invoke(app, ["sweep", str(spec), "--emit", "trl", "--out",
                                      str(tmp_path / "x")])
    assert result.exit_code == 2 and "unknown engine 'trl'" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_a_launch_loads_the_member_of_the_runs_family_recipe(tmp_path):
    from rlscale.experiments.verl import _model_path
    from rlscale.pretrain.family import member_record
    from rlscale.rl.config import TrainConfig
    from rlscale.rl.trainer import resolve_model_path

    recipe = {"base": {"steps": 12, "batch_size": 8, "seed": 100}, "n_check": 16}
    config = TrainConfig(model="mini-42k", family_recipe=recipe, family_root=str(tmp_path))
    with pytest.raises(ConfigError, match="not built yet by the run's recipe"):
        _model_path(config)  # never the shipped weights of another recipe
    built = resolve_model_path(config)
    assert Path(_model_path(config)) == built.resolve()
    assert member_record(built)["recipe"]["base"]["seed"] == 100
