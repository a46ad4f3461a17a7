"""An experiment spec as VeRL launches, and VeRL's metrics back as run directories.

`emit_verl(spec, out)` writes, for every run of the spec, a folder `<out>/<run_id>/` with

- `train.parquet`: the prompts in exactly the order rlscale's trainer consumes them (its own
  `load_run_data` schedule: curriculum or shuffle, the tau-reuse subset repeated tau times),
  steps x prompts_per_step rows, for VeRL's `data.shuffle=False` sequential loader;
- `val.parquet`: the held-out set (data_source "holdout", so VeRL reports
  `val-core/holdout/acc/mean@N`), and `eval_<name>.parquet` per extra eval set;
- `reward.py`: rlscale's verifier (`rlscale.reward.verify`) as VeRL's custom reward function;
- `launch.sh`: `python3 -m verl.trainer.main_ppo` with the recipe as Hydra overrides
  (`verl_recipe`), VeRL's file logger writing `verl_metrics.jsonl` into the folder;
- `run.json`: the rlscale config of the run, the override list and what the import needs.

The parquet files use VeRL's schema (examples/data_preprocess/gsm8k.py, the guru files):
`data_source`, `prompt` (chat messages), `ability`, `reward_model {ground_truth, style: rule}`,
`extra_info {index, split, id, step, pass_rate}`. `import_emitted(out, runs)` turns every launched
run's file-logger JSONL into an rlscale run directory (`rlscale import OUT --format verl`).

Targets VeRL 0.9 (verl_version="0.9", checked against its Hydra config in
tests/test_experiments_verl.py); verl_version="0.6" writes the same recipe for VeRL 0.6-0.8 (the
file logger exists from 0.6.0): the reward function under the legacy top-level
`custom_reward_function` and no `rollout.seed`, which those versions do not have (their vLLM
engines sample with seed 0 in every run, so seed grids differ only by GPU nondeterminism there).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rlscale import __version__
from rlscale.data.problem import Problem
from rlscale.errors import ConfigError, DataError
from rlscale.files import atomic_write_text

VERL_VERSIONS = ("0.9", "0.6")
DEFAULT_VERL_VERSION = "0.9"
RUN_DIR = "$RUN_DIR"  # the launch script's own folder; set by launch.sh at run time
METRICS_FILE = "verl_metrics.jsonl"  # where VeRL's file logger writes (VERL_FILE_LOGGER_PATH)
MERGED_METRICS_FILE = "verl_metrics.merged.jsonl"
PART_GLOB = "verl_metrics.*.part.jsonl"  # earlier attempts' logs, set aside by launch.sh
RUN_FILE = "run.json"
MANIFEST_FILE = "verl_sweep.json"
HOLDOUT = "holdout"
# Plain text for text prompts: rlscale feeds a text prompt to the model as it is (no chat
# template), as it does chat messages when the tokenizer has no template (joined by newlines).
RAW_CHAT_TEMPLATE = "{{ messages | map(attribute='content') | join('\\n') }}"
LOSS_AGG = {"token-mean": "token-mean", "seq-mean": "seq-mean-token-mean"}
VERL_KL_CLAMP = 10.0  # VeRL's low_var_kl clamps the per-token KL to +-10 (core_algos.kl_penalty)
VERL_ADV_EPS = 1e-6  # VeRL's GRPO advantage: (r - mean) / (std + 1e-6)
DEFAULT_MICRO_BATCH = 8  # sequences per GPU per forward/backward when the config sets none
DEFAULT_GPUS = (1, 8)  # trainer.nnodes, trainer.n_gpus_per_node; override on the command line
ROLLOUT_SEED_STRIDE = 1000  # VeRL 0.9 seeds replica r with rollout.seed + r

_MESSAGE = pa.struct([("content", pa.string()), ("role", pa.string())])
VERL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(_MESSAGE)),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
    ("extra_info", pa.struct([("index", pa.int64()), ("split", pa.string()), ("id", pa.string()),
                              ("step", pa.int64()), ("pass_rate", pa.float64())])),
])


@dataclass(frozen=True)
class EmittedRun:
    """One run's VeRL launch folder."""

    run_id: str
    run_dir: Path
    steps: int
    train_rows: int
    distinct_prompts: int
    eval_rows: dict[str, int]
    overrides: list[str] = field(repr=False)

    @property
    def launch(self) -> Path:
        return self.run_dir / "launch.sh"


@dataclass(frozen=True)
class ImportedRuns:
    """What `import_emitted` brought back: run directories, and the runs with no metrics yet."""

    run_dirs: list[Path]
    missing: list[str]


# --- the recipe ---------------------------------------------------------------------------


def check_expressible(config) -> None:
    """ConfigError naming every field of a TrainConfig that VeRL's GRPO trainer cannot reproduce."""
    problems = []
    if config.dtype != "bfloat16":
        problems.append(f"key 'dtype': VeRL computes in bfloat16 over float32 master weights "
                        f"(rlscale's dtype=bfloat16), got {config.dtype!r}; set dtype=bfloat16")
    if config.dtype == "bfloat16" and config.recompute_old_logprobs is False:  # set explicitly
        problems.append("key 'recompute_old_logprobs': VeRL always recomputes the old-policy "
                        "log-probs; set it to true (or leave it unset)")
    if config.kl_coef > 0 and config.kl_clamp != VERL_KL_CLAMP:
        problems.append(f"key 'kl_clamp': VeRL clamps the low_var_kl at {VERL_KL_CLAMP:g}, "
                        f"got {config.kl_clamp:g}")
    if config.adv_eps != VERL_ADV_EPS:
        problems.append(f"key 'adv_eps': VeRL's GRPO divides by std + {VERL_ADV_EPS:g}, "
                        f"got {config.adv_eps:g}")
    if config.eval_estimator != "sampled":
        problems.append(f"key 'eval_estimator': VeRL's validation samples; "
                        f"{config.eval_estimator!r} has no VeRL counterpart (use 'sampled')")
    if config.eval_noise_repeats:
        problems.append("key 'eval_noise_repeats': VeRL validates once per eval step; set it to 0")
    if config.loss_agg not in LOSS_AGG:
        problems.append(f"key 'loss_agg': no VeRL loss_agg_mode for {config.loss_agg!r}")
    if problems:
        raise ConfigError("; ".join(problems))


def verl_recipe(config, *, n_steps: int, model_path: str, eval_files: list[str] | None = None,
                raw_prompts: bool = False, run_dir: str = RUN_DIR,
                verl_version: str = DEFAULT_VERL_VERSION) -> dict[str, Any]:
    """The run's recipe as VeRL (Hydra) override keys -> values, from its TrainConfig.

    n_steps: the run's steps (the rows of train.parquet / prompts_per_step); model_path: the
    Hugging Face directory VeRL loads; eval_files: the validation parquet files, the hold-out
    first (default: `<run_dir>/val.parquet`); raw_prompts: feed prompts without a chat template.
    Memory-only settings (micro-batches, rollout tensor parallelism, GPUs) get working defaults;
    append your own `key=value` to launch.sh to change them.
    """
    check_expressible(config)
    if verl_version not in VERL_VERSIONS:
        raise ConfigError(f"key 'verl_version': one of {list(VERL_VERSIONS)}, got {verl_version!r}")
    eval_files = eval_files or [f"{run_dir}/val.parquet"]
    group = config.group_size
    micro = _micro_batch(config)
    actor, rollout = "actor_rollout_ref.actor", "actor_rollout_ref.rollout"
    recipe: dict[str, Any] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.norm_adv_by_std_in_grpo": config.std_normalize,
        "algorithm.use_kl_in_reward": False,
        "data.train_files": f"{run_dir}/train.parquet",
        "data.val_files": eval_files[0] if len(eval_files) == 1 else list(eval_files),
        "data.train_batch_size": config.prompts_per_step,
        "data.max_prompt_length": config.max_prompt_tokens,
        "data.max_response_length": config.max_response_tokens,
        "data.truncation": "left",  # rlscale left-truncates long prompts, never drops them
        "data.filter_overlong_prompts": False,
        "data.shuffle": False,  # train.parquet is already in the trainer's order
        "actor_rollout_ref.model.path": model_path,
    }
    if raw_prompts:
        recipe["actor_rollout_ref.model.custom_chat_template"] = RAW_CHAT_TEMPLATE
    recipe |= {
        f"{actor}.optim.lr": config.lr,
        f"{actor}.optim.lr_warmup_steps_ratio": 0.0,  # constant lr, no warm-up
        f"{actor}.optim.weight_decay": config.weight_decay,
        f"{actor}.optim.betas": list(config.adam_betas),
        f"{actor}.optim.clip_grad": config.grad_clip,  # VeRL's engine workers read this one,
        f"{actor}.grad_clip": config.grad_clip,  # its legacy FSDP workers this one
        f"{actor}.ppo_mini_batch_size": config.mini_batch_prompts,  # prompts, x n in VeRL
        f"{actor}.ppo_micro_batch_size_per_gpu": micro,
        f"{actor}.ppo_epochs": config.epochs,
        f"{actor}.shuffle": False,
        f"{actor}.use_kl_loss": config.kl_coef > 0,
        f"{actor}.kl_loss_coef": config.kl_coef,
        f"{actor}.kl_loss_type": "low_var_kl",  # k3, as rlscale's KL
        f"{actor}.clip_ratio": config.clip_low,
        f"{actor}.clip_ratio_low": config.clip_low,
        f"{actor}.clip_ratio_high": config.clip_high,
        f"{actor}.loss_agg_mode": LOSS_AGG[config.loss_agg],
        f"{actor}.entropy_coeff": config.entropy_coef,
        f"{rollout}.name": "vllm",
        f"{rollout}.n": group,
        f"{rollout}.temperature": config.temperature,
        f"{rollout}.top_p": config.top_p,
        f"{rollout}.tensor_model_parallel_size": _rollout_tp(config.nominal_n),
        f"{rollout}.log_prob_micro_batch_size_per_gpu": micro,
        f"{rollout}.val_kwargs.do_sample": not config.eval_greedy,
        f"{rollout}.val_kwargs.temperature": 0.0 if config.eval_greedy else config.eval_temperature,
        f"{rollout}.val_kwargs.top_p": 1.0,
        f"{rollout}.val_kwargs.n": config.eval_samples,
        "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": micro,
    }
    reward = "reward.custom_reward_function" if verl_version == "0.9" else "custom_reward_function"
    recipe |= {f"{reward}.path": f"{run_dir}/reward.py", f"{reward}.name": "compute_score"}
    if verl_version == "0.9":
        recipe[f"{rollout}.seed"] = config.seed * ROLLOUT_SEED_STRIDE
    recipe |= {
        "trainer.logger": ["console", "file"],
        "trainer.project_name": config.experiment,
        "trainer.experiment_name": config.run_name,
        "trainer.total_epochs": 1,
        "trainer.total_training_steps": n_steps,
        "trainer.val_before_train": True,  # the step-0 evaluation
        # VeRL validates at multiples of test_freq and at the last step, as rlscale does.
        "trainer.test_freq": config.eval_every or n_steps,
        "trainer.save_freq": config.checkpoint_every or n_steps,
        "trainer.max_actor_ckpt_to_keep": config.keep_checkpoints,
        "trainer.default_local_dir": f"{run_dir}/checkpoints",
        "trainer.critic_warmup": 0,
        "trainer.nnodes": DEFAULT_GPUS[0],
        "trainer.n_gpus_per_node": DEFAULT_GPUS[1],
    }
    if verl_version == "0.9":  # the file logger's path also reaches Ray workers on other nodes
        recipe["++ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH"] = \
            f"{run_dir}/{METRICS_FILE}"
    return recipe


def format_overrides(recipe: dict[str, Any]) -> list[str]:
    """`key=value` strings in Hydra's override syntax (strings quoted where Hydra needs it)."""
    return [f"{key}={_hydra_value(value)}" for key, value in recipe.items()]


def _hydra_value(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # shortest round trip; exponents without padding: 1e-06 -> 1e-6
        return re.sub(r"e([+-]?)0*(\d)", lambda m: "e" + m[1].replace("+", "") + m[2], text)
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    text = str(value)
    if _plain_string(text):
        return text
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _plain_string(text: str) -> bool:
    """Whether Hydra reads `text` unquoted as this same string (names, ids, plain paths)."""
    if not re.fullmatch(r"[A-Za-z0-9_./+-]+", text) or not re.search(r"[A-Za-z/]", text):
        return False
    if text.lower() in ("true", "false", "null", "none", "nan", "inf", "-inf", "+inf"):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def _micro_batch(config) -> int:
    """Sequences per GPU per pass (memory only): the config's, else 8, dividing the per-GPU
    mini-batch on the default 8 GPUs (VeRL asserts that it divides)."""
    wanted = config.micro_batch_sequences or DEFAULT_MICRO_BATCH
    per_gpu = config.mini_batch_prompts * config.group_size // (DEFAULT_GPUS[0] * DEFAULT_GPUS[1])
    return math.gcd(wanted, per_gpu) if per_gpu else 1


def _rollout_tp(nominal_n: float | None) -> int:
    """vLLM tensor parallelism by model size, a starting point (memory only); VeRL's 2 if unknown."""
    if nominal_n is None:
        return 2
    for limit, tp in ((4e9, 1), (16e9, 2), (40e9, 4)):
        if nominal_n <= limit:
            return tp
    return 8


# --- emitting -----------------------------------------------------------------------------


def emit_verl(spec_path: str | Path, out_dir: str | Path, *,
              overrides: dict[str, Any] | None = None,
              verl_version: str = DEFAULT_VERL_VERSION) -> list[EmittedRun]:
    """Write every run of an experiment spec as a VeRL launch folder `<out_dir>/<run_id>/`.

    overrides: training-config keys set for every run (as `rlscale sweep SPEC key=value`).
    Every run is checked (its config, that VeRL can express it, its data) before anything is
    written.
    """
    from rlscale.experiments.spec import expand, load_spec, validate_runs

    spec_path, out_dir = Path(spec_path), Path(out_dir)
    if verl_version not in VERL_VERSIONS:
        raise ConfigError(f"--verl-version: one of {list(VERL_VERSIONS)}, got {verl_version!r}")
    exp, spec_dir = load_spec(spec_path)
    runs = expand(exp, spec_dir, overrides)
    validate_runs(runs, spec_path)
    configs = []
    for run in runs:
        config = run.config(out_dir)
        try:
            check_expressible(config)
        except ConfigError as e:
            raise ConfigError(f"{spec_path}: run '{run.run_id}': cannot run on VeRL: {e}") from None
        configs.append(config)

    plans, data_by_key = [], {}  # runs with the same data settings share one schedule
    for config in configs:  # everything that can fail on the data, before writing anything
        try:
            plans.append(_plan_run(config, data_by_key))
        except ConfigError as e:
            raise ConfigError(f"{spec_path}: run '{config.run_name}': {e}") from None
    emitted, written = [], {}  # data key -> the folder whose parquet files later runs link
    for plan in plans:
        emitted.append(_write_run(plan, out_dir / plan.config.run_name, written,
                                  spec_path=spec_path, verl_version=verl_version))
    manifest = {"format": "rlscale-verl-sweep/1", "experiment": exp.name, "spec": str(spec_path),
                "verl_version": verl_version, "rlscale_version": __version__,
                "runs": [r.run_id for r in emitted]}
    _write(out_dir / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    return emitted


@dataclass
class _Plan:
    config: Any
    data: Any  # the trainer's RunData
    data_key: str
    n_steps: int
    model_path: str
    raw_prompts: bool


def _plan_run(config, data_by_key: dict) -> _Plan:
    from rlscale.rl.trainer import load_run_data

    key = json.dumps({"data": config.data.model_dump(mode="json"), "steps": config.steps,
                      "total_prompts": config.total_prompts, "pps": config.prompts_per_step},
                     sort_keys=True)
    if key not in data_by_key:
        data_by_key[key] = load_run_data(config)  # the trainer's own schedule and eval sets
    data = data_by_key[key]
    model_path = _model_path(config)
    problems = [*data.schedule, *(p for ps in data.eval_sets.values() for p in ps)]
    return _Plan(config, data, key, len(data.schedule) // config.prompts_per_step, model_path,
                 _raw_prompts(problems, model_path))


def _write_run(plan: _Plan, run_dir: Path, written: dict, *, spec_path: Path,
               verl_version: str) -> EmittedRun:
    config, data, n_steps = plan.config, plan.data, plan.n_steps
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"train.parquet": (data.schedule, "train", None)}
    eval_names = {}
    for name, problems in data.eval_sets.items():
        file = "val.parquet" if name == HOLDOUT else f"eval_{_file_part(name)}.parquet"
        eval_names[name] = file
        files[file] = (problems, "test", name)
    if plan.data_key not in written:
        for file, (problems, split, source) in files.items():
            write_verl_parquet(problems, run_dir / file, split=split, data_source=source,
                               prompts_per_step=config.prompts_per_step if split == "train"
                               else None)
        written[plan.data_key] = run_dir
    else:
        for file in files:
            _link_or_copy(written[plan.data_key] / file, run_dir / file)

    recipe = verl_recipe(config, n_steps=n_steps, model_path=plan.model_path,
                         eval_files=[f"{RUN_DIR}/{f}" for f in eval_names.values()],
                         raw_prompts=plan.raw_prompts, verl_version=verl_version)
    overrides = format_overrides(recipe)
    _write(run_dir / "reward.py", reward_source(config.reward_timeout))
    launch = run_dir / "launch.sh"
    _write(launch, launch_script(config, overrides, n_steps=n_steps, verl_version=verl_version),
           mode=0o755)
    eval_rows = {name: len(problems) for name, problems in data.eval_sets.items()}
    record = {
        "format": "rlscale-verl-run/1", "experiment": config.experiment,
        "run_id": config.run_name, "spec": str(spec_path), "verl_version": verl_version,
        "rlscale_version": __version__, "steps": n_steps,
        "prompts_per_step": config.prompts_per_step, "group_size": config.group_size,
        "N": config.nominal_n, "n_for_compute": config.n_for_compute,
        "train_rows": len(data.schedule), "distinct_prompts": data.n_distinct,
        "eval_files": eval_names, "eval_rows": eval_rows, "metrics_file": METRICS_FILE,
        "model_path": plan.model_path, "raw_prompts": plan.raw_prompts,
        "run_keys": {"family": config.family or _family(config), "variant": config.variant,
                     "order": config.data.order, "seed": config.seed,
                     "tau": config.data.reuse_tau, "G": config.group_size,
                     "model": config.model},
        "config": config.model_dump(mode="json"), "overrides": overrides,
    }
    _write(run_dir / RUN_FILE, json.dumps(record, indent=2) + "\n")
    return EmittedRun(config.run_name, run_dir, n_steps, len(data.schedule), data.n_distinct,
                      eval_rows, overrides)


def verl_rows(problems: list[Problem], *, split: str, data_source: str | None = None,
              prompts_per_step: int | None = None) -> list[dict]:
    """Problems as VeRL dataset rows, in order; `extra_info.step` is the training step of each
    row when prompts_per_step is given (the trainer's schedule), else null."""
    rows = []
    for index, problem in enumerate(problems):
        messages = (problem.prompt if isinstance(problem.prompt, list)
                    else [{"role": "user", "content": problem.prompt}])
        rows.append({
            "data_source": data_source or problem.source or split,
            "prompt": [{"content": m["content"], "role": m["role"]} for m in messages],
            "ability": str(problem.metadata.get("ability") or "math"),
            "reward_model": {"ground_truth": problem.answer, "style": "rule"},
            "extra_info": {"index": index, "split": split, "id": problem.id,
                           "step": index // prompts_per_step + 1 if prompts_per_step else None,
                           "pass_rate": problem.pass_rate},
        })
    return rows


def write_verl_parquet(problems: list[Problem], path: str | Path, *, split: str,
                       data_source: str | None = None,
                       prompts_per_step: int | None = None) -> Path:
    """Write problems as a VeRL parquet file (VERL_SCHEMA), atomically."""
    path = Path(path)
    table = pa.Table.from_pylist(verl_rows(problems, split=split, data_source=data_source,
                                           prompts_per_step=prompts_per_step), schema=VERL_SCHEMA)
    temp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temp)
    os.replace(temp, path)
    return path


def reward_source(timeout: float) -> str:
    """reward.py: VeRL's custom reward function, scoring a response as rlscale's trainer does."""
    package_root = str(Path(__file__).resolve().parents[2])
    return f'''"""rlscale's answer check as VeRL's reward function (written by `rlscale sweep --emit verl`).

A response scores 1.0 when its last \\\\boxed{{}} answer equals the ground truth by
rlscale.reward.verify (a fast path, then math-verify in a killable worker with a {timeout:g} s
limit; a timeout scores 0), as in rlscale's own trainer. "acc" is what VeRL's validation reports
(val-core/<data_source>/acc/mean@N).
"""

import sys

try:
    from rlscale.reward import verify
except ImportError:  # rlscale is not installed where VeRL runs: use the copy that wrote this file
    sys.path.insert(0, {package_root!r})
    from rlscale.reward import verify

TIMEOUT_S = {float(timeout)!r}


def compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    verdict = verify(solution_str, ground_truth, timeout=TIMEOUT_S)
    correct = float(verdict.correct and not verdict.timed_out)
    return {{"score": correct, "acc": correct, "timed_out": float(verdict.timed_out)}}
'''


def launch_script(config, overrides: list[str], *, n_steps: int,
                  verl_version: str = DEFAULT_VERL_VERSION) -> str:
    """launch.sh: VeRL's GRPO trainer on this folder's files, metrics to verl_metrics.jsonl."""
    args = " \\\n".join(f"    {_shell_arg(item)}" for item in overrides)
    version = "0.9" if verl_version == "0.9" else "0.6-0.8"
    return f"""#!/usr/bin/env bash
# VeRL launch of rlscale run {config.experiment}/{config.run_name} (VeRL {version}), written by
# `rlscale sweep SPEC --emit verl` (rlscale {__version__}). The paper's recipe as VeRL overrides:
#   train.parquet  {n_steps} steps x {config.prompts_per_step} prompts, in rlscale's order
#   val.parquet    the held-out set, evaluated at step 0, {_every(config.eval_every or n_steps)} and at the end
# Run on one GPU node or the head node of a Ray cluster:   bash launch.sh [key=value ...]
# Arguments are appended to the overrides and win, e.g. trainer.nnodes=4 or
# actor_rollout_ref.rollout.tensor_model_parallel_size=4 (memory and placement only).
# VeRL's file logger writes verl_metrics.jsonl here (console output: console.log); then
#   rlscale import <this folder or its parent> --format verl --out runs
set -euo pipefail
RUN_DIR="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
export VERL_FILE_LOGGER_PATH="$RUN_DIR/{METRICS_FILE}"
# VeRL truncates the file logger's file when it starts: keep a resumed run's earlier metrics.
if [ -s "$VERL_FILE_LOGGER_PATH" ]; then
    mv "$VERL_FILE_LOGGER_PATH" "$RUN_DIR/verl_metrics.$(date +%Y%m%dT%H%M%S).part.jsonl"
fi
"${{PYTHON:-python3}}" -m verl.trainer.main_ppo \\
{args} \\
    "$@" 2>&1 | tee -a "$RUN_DIR/console.log"
"""


def _every(k: int) -> str:
    return "every step" if k == 1 else f"every {k} steps"


def _shell_arg(item: str) -> str:
    """One override as one shell word; `$RUN_DIR` is left for the shell to expand."""
    if RUN_DIR not in item and "'" not in item:
        return shlex.quote(item)
    parts = [re.sub(r'(["\\$`])', r"\\\1", part) for part in item.split(RUN_DIR)]
    return '"' + RUN_DIR.join(parts) + '"'


def _model_path(config) -> str:
    """The Hugging Face directory VeRL loads: a family size's weights (shipped or already built),
    else the configured path (made absolute when it exists here)."""
    from rlscale.models import LADDER

    if config.model in LADDER:
        from rlscale.pretrain.family import cached_path, shipped_path

        recipe = config.member_recipe()
        path = (shipped_path(config.model, config.variant, recipe)
                or cached_path(config.model, config.variant, root=config.family_root, config=recipe))
        if path is None:
            how = "`rlscale pretrain`" if config.family_recipe is None else \
                "`rlscale pretrain --recipe` with the run's family_recipe"
            raise ConfigError(f"key 'model': {config.model!r} ({config.variant}) is not built yet "
                              f"by the run's recipe; build it with {how} or give a model directory")
        return str(Path(path).resolve())
    path = Path(config.model).expanduser()
    return str(path.resolve()) if path.exists() else config.model


def _raw_prompts(problems: list[Problem], model_path: str) -> bool:
    """Whether VeRL must feed prompts without the model's chat template (rlscale's
    render_prompt: text prompts always, chat messages when the tokenizer has no template)."""
    chat = any(isinstance(p.prompt, list) for p in problems)
    text = any(isinstance(p.prompt, str) for p in problems)
    template = _has_chat_template(Path(model_path))
    if not chat or template is False:
        return True
    if text:
        raise ConfigError("key 'data.source': the problems mix text and chat prompts; rlscale "
                          "templates only the chat ones, VeRL templates all or none")
    return False


def _has_chat_template(model_dir: Path) -> bool | None:
    """True/False for a local tokenizer; None when the model is not on this machine."""
    if not model_dir.is_dir():
        return None
    if (model_dir / "chat_template.jinja").is_file() or (model_dir / "chat_template.json").is_file():
        return True
    config = model_dir / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return None


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    """Write atomically, readable by all (Ray workers may run as another user on shared storage)."""
    atomic_write_text(path, text)
    path.chmod(mode)


def _family(config) -> str:
    from rlscale.models import LADDER

    return "mini" if config.model in LADDER else Path(config.model).name.split("-")[0].lower()


def _file_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name)


def _link_or_copy(source: Path, target: Path) -> None:
    """The same bytes under another name: a hard link where the filesystem allows one."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# --- importing back -----------------------------------------------------------------------


def emitted_runs(src: str | Path) -> list[Path]:
    """The run folders of an emitted sweep (its manifest's order), or `src` itself if it is one."""
    src = Path(src)
    if (src / RUN_FILE).is_file():
        return [src]
    manifest = src / MANIFEST_FILE
    if manifest.is_file():
        try:
            ids = json.loads(manifest.read_text(encoding="utf-8"))["runs"]
        except (ValueError, KeyError, TypeError) as error:
            raise DataError(f"not an emitted sweep manifest: {error}", path=manifest) from None
        runs = [src / str(run_id) for run_id in ids]
        return [run for run in runs if (run / RUN_FILE).is_file()]
    return sorted(path.parent for path in src.glob(f"*/{RUN_FILE}"))


def run_metrics(run_dir: Path) -> Path | None:
    """The run's file-logger JSONL: earlier attempts' parts, then the latest, concatenated in time
    order when there are several (a later record of a step wins, as the importer reads them)."""
    logs = sorted(run_dir.glob(PART_GLOB))
    if (run_dir / METRICS_FILE).is_file():
        logs.append(run_dir / METRICS_FILE)
    logs = [log for log in logs if log.stat().st_size]
    if len(logs) <= 1:
        return logs[0] if logs else None
    text = "".join(log.read_text(encoding="utf-8", errors="replace").rstrip("\n") + "\n"
                   for log in logs)
    atomic_write_text(run_dir / MERGED_METRICS_FILE, text)
    return run_dir / MERGED_METRICS_FILE


def import_emitted(src: str | Path, out_root: str | Path, *, experiment: str | None = None,
                   n: float | None = None) -> ImportedRuns:
    """Import every launched run of an emitted folder as `<out_root>/<experiment>/<run_id>/`.

    N (for C = 6 N T) is the run's nominal_n unless `n` is given; D = step x prompts_per_step;
    the run keys (seed, tau, G, order, model, family) come from the run's run.json.
    Runs without metrics yet are listed in `missing`; none at all is an error.
    """
    from rlscale.runs.importers import import_verl
    from rlscale.runs.read import META_FILE

    src = Path(src)
    runs = emitted_runs(src)
    if not runs:
        raise DataError(f"no emitted VeRL runs here (no {RUN_FILE}; see `rlscale sweep --emit "
                        "verl`)", path=src)
    imported, missing = [], []
    for run_dir in runs:
        record = _read_run_record(run_dir / RUN_FILE)
        metrics = run_metrics(run_dir)
        if metrics is None:
            missing.append(record["run_id"])
            continue
        size = n if n is not None else record.get("N")
        if size is None:
            raise DataError("the run has no model size (nominal_n); pass --n", path=run_dir /
                            RUN_FILE, field="N")
        target = import_verl(metrics, out_root, experiment=experiment or record["experiment"],
                             n=float(size), run_id=record["run_id"],
                             prompts_per_step=record["prompts_per_step"])
        meta_path = target / META_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        keys = {k: v for k, v in (record.get("run_keys") or {}).items() if k not in meta}
        meta |= {**keys, "steps_planned": record.get("steps"),
                 "verl_launch": str((run_dir / RUN_FILE).resolve())}
        atomic_write_text(meta_path, json.dumps(meta, indent=2, allow_nan=True) + "\n")
        imported.append(target)
    if not imported:
        raise DataError(f"no run has VeRL metrics yet ({METRICS_FILE} in its folder); launch "
                        f"them with `bash <run>/launch.sh`", path=src)
    return ImportedRuns(imported, missing)


def _read_run_record(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DataError(f"not JSON: {error}", path=path) from None
    for key in ("run_id", "experiment", "prompts_per_step"):
        if key not in record:
            raise DataError("missing key", path=path, field=key)
    return record
