"""`backend=trl`: the same run through TRL's GRPOTrainer, writing rlscale's run directory.

rlscale keeps everything that defines the experiment and its records: the prompt schedule
(curriculum or shuffle, data reuse tau, in exactly the native order), the Verifier as the reward,
the held-out evaluation (`rl/evaluate.py`, same seeds as the native trainer) and the accounting
(D, D_unique, tokens, T, C = 6 N T, FLOPs) written through `rlscale.runs.schema`. TRL does the
rollouts, the loss and the updates, which is what lets a run use `accelerate launch` (DeepSpeed
ZeRO-3, FSDP) and vLLM rollouts.

The recipe mapping lives in one place, `grpo_config` (docs/training.md, "TRL backend", has the
table). One rlscale step = one TRL generation of prompts_per_step x G sequences followed by
(prompts_per_step / mini_batch_prompts) x epochs optimizer steps; TRL's `global_step` counts
optimizer steps, so rlscale's step s ends at global step s x `updates_per_step(config)`.

Resume: TRL's checkpoints live in `<run_dir>/checkpoints/checkpoint-<global step>` (always at
rlscale step boundaries); a resumed run continues from the latest complete one, and the run log
drops every record after that step (`RunWriter.truncate_after`), so that nothing is lost or
duplicated. TRL itself (and accelerate) are imported only here, lazily: `pip install rlscale[trl]`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlscale.errors import ConfigError
from rlscale.rl.config import TrainConfig

TRL_INSTALL = "backend=trl needs TRL and accelerate: pip install 'rlscale[trl]'"
CHECKPOINT_PREFIX = "checkpoint-"

# Fields TRL has no setting for, with the only value at which TRL's behaviour is rlscale's (up to
# what docs/training.md states); any other value is refused, naming the field.
_FIXED_IN_TRL = {
    "kl_clamp": (10.0, "TRL's k3 KL is not clamped; rlscale's +-10 nats clamp never binds at "
                       "the recipe's KL sizes, other clamps cannot be expressed"),
    "adv_eps": (1e-6, "TRL adds a fixed 1e-4 to the group std"),
}


def _require_trl():
    """Import trl (and check accelerate) or raise the install hint."""
    try:
        import accelerate  # noqa: F401
        import trl
    except ImportError as error:
        raise ConfigError(f"{TRL_INSTALL} ({error})") from None
    return trl


def world_size() -> int:
    """Processes of this launch (accelerate/torchrun set WORLD_SIZE; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def updates_per_step(config: TrainConfig) -> int:
    """TRL optimizer steps (its global_step) per rlscale step."""
    return config.prompts_per_step // config.mini_batch_prompts * config.epochs


def grpo_config(config: TrainConfig, *, world: int | None = None) -> dict[str, Any]:
    """The paper's recipe (a TrainConfig) as GRPOConfig keyword arguments: the one mapping.

    Batch: an optimizer step of TRL takes `per_device_train_batch_size x world x
    gradient_accumulation_steps` sequences, which is one rlscale mini-batch (mini_batch_prompts x
    G; micro_batch_sequences sets the per-device pass, gradient accumulation the rest), and
    `steps_per_generation` (counted in per-device passes) makes one generation prompts_per_step
    x G sequences. loss_type 'dapo' divides by the active tokens of the whole accumulated,
    all-process batch: rlscale's token-mean over the mini-batch; 'grpo' is seq-mean. run_dir
    and n_steps parts (output_dir, max_steps, save_steps) are added by `train`.
    Raises ConfigError naming a field TRL cannot express.
    """
    world = world or world_size()
    G, M, P = config.group_size, config.mini_batch_prompts, config.prompts_per_step
    for key, (value, why) in _FIXED_IN_TRL.items():
        if getattr(config, key) != value:
            raise ConfigError(f"key '{key}': backend=trl cannot express {key}="
                              f"{getattr(config, key)!r} ({why}); use backend=native")
    if config.device.startswith("cuda:"):
        raise ConfigError("key 'device': backend=trl places processes itself; use device=cuda "
                          "and CUDA_VISIBLE_DEVICES (or accelerate launch) to pick GPUs")
    update_sequences = M * G
    if update_sequences % world:
        raise ConfigError(f"key 'mini_batch_prompts': a mini-batch of {M} x G={G} sequences "
                          f"does not split over {world} processes")
    per_process = update_sequences // world
    per_device = min(config.micro_batch_sequences or per_process, per_process)
    if per_process % per_device:
        raise ConfigError(f"key 'micro_batch_sequences': {per_device} does not divide the "
                          f"{per_process} sequences a process takes per update")
    accumulation = per_process // per_device
    generation_passes = P * G // (per_device * world)  # per-device passes per generation
    if config.use_vllm and importlib.util.find_spec("vllm") is None:
        raise ConfigError("key 'use_vllm': vLLM is not installed (pip install vllm)")
    return {
        # optimizer: AdamW, constant lr, no warm-up; weight decay on every parameter (the
        # trainer subclass below, as rlscale; HF exempts biases and norms)
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": config.weight_decay,
        "adam_beta1": config.adam_betas[0],
        "adam_beta2": config.adam_betas[1],
        "max_grad_norm": config.grad_clip,
        # objective
        "beta": config.kl_coef,
        "epsilon": config.clip_low,
        "epsilon_high": config.clip_high,
        "loss_type": "dapo" if config.loss_agg == "token-mean" else "grpo",
        "scale_rewards": "group" if config.std_normalize else "none",
        **({"entropy_coef": config.entropy_coef} if config.entropy_coef else {}),
        "importance_sampling_level": "token",
        "mask_truncated_completions": False,
        "num_iterations": config.epochs,
        # batch
        "num_generations": G,
        "per_device_train_batch_size": per_device,
        "gradient_accumulation_steps": accumulation,
        "steps_per_generation": generation_passes,
        "shuffle_dataset": False,  # rlscale's schedule is the order
        # sampling
        "temperature": config.temperature,
        "top_p": config.top_p,
        "top_k": 0,
        "max_completion_length": config.max_response_tokens,
        "use_vllm": config.use_vllm,
        # precision and placement
        "bf16": config.dtype == "bfloat16",
        "fp16": False,
        "use_cpu": config.device == "cpu",
        "model_init_kwargs": {"dtype": "float32"},  # float32 master weights, as rlscale
        # bookkeeping
        "seed": config.seed,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_total_limit": config.keep_checkpoints,
        "report_to": "none",
        "remove_unused_columns": False,
        "dataloader_num_workers": 0,
    }


# ----------------------------------------------------------------------------- the run


class _Capture:
    """What the reward function saw of the current generation (per process)."""

    def __init__(self):
        self.clear()

    def clear(self):
        self.rewards: list[float] = []
        self.timeouts = 0
        self.prompt_lens: list[int] = []
        self.response_lens: list[int] = []
        self.truncated: list[bool] = []


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) a GRPO run through TRL's GRPOTrainer; returns the run directory."""
    trl = _require_trl()
    from datasets import Dataset
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoTokenizer,
        PrinterCallback,
        TrainerCallback,
    )
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig
    from trl import GRPOTrainer as TRLGRPOTrainer

    from rlscale.models import count_params
    from rlscale.models.flops import ModelShape
    from rlscale.reward import Verifier
    from rlscale.rl import trainer as native
    from rlscale.runs import RunWriter
    from rlscale.runs.read import read_jsonl
    from rlscale.threads import set_torch_threads

    set_torch_threads(config.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    native._seed_everything(config.seed)
    native._deterministic(config.device)
    mapped = grpo_config(config)
    run_dir = config.run_dir()
    model_path = native.resolve_model_path(config)
    data = native.load_run_data(config)
    n_steps = len(data.schedule) // config.prompts_per_step
    U = updates_per_step(config)
    checkpoints = run_dir / "checkpoints"
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    missing = sorted(set(mapped) - known)
    if missing:
        raise ConfigError(f"the installed TRL ({trl.__version__}) has no GRPOConfig field "
                          f"{missing}, which this config needs; upgrade: {TRL_INSTALL}")
    os.environ.setdefault("WANDB_DISABLED", "true")
    args = GRPOConfig(output_dir=str(checkpoints), max_steps=n_steps * U,
                      save_steps=(config.checkpoint_every or n_steps) * U,
                      disable_tqdm=not progress, **mapped)
    if args.world_size != world_size():
        raise ConfigError(f"accelerate runs {args.world_size} processes but WORLD_SIZE says "
                          f"{world_size()}; launch with accelerate launch or torchrun")
    main = args.process_index == 0

    # N and the shape from the config alone (no weights: under ZeRO-3 they are sharded).
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    counted = count_params(skeleton)
    n_compute = native.compute_n(config, skeleton)
    shape = ModelShape.from_model(skeleton)
    del skeleton

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # rlscale's prompt text (chat template, left-truncated to max_prompt_tokens), in its order.
    texts = native.GRPOTrainer.render(_Renderer(config, tokenizer), data.schedule)
    dataset = Dataset.from_dict({
        "prompt": texts,
        "answer": [p.answer for p in data.schedule],
        "prompt_len": [len(ids) for ids in tokenizer(texts)["input_ids"]],
    })

    latest = latest_checkpoint(checkpoints) if resume else None
    start_step = 0
    if latest is not None:
        start_step = _global_step(latest) // U
        _check_resumable(run_dir, config)
    eval_steps = {0, n_steps}
    if config.eval_every:
        eval_steps |= set(range(0, n_steps + 1, config.eval_every))

    verifier = Verifier(workers=config.reward_workers, timeout=config.reward_timeout)
    capture = _Capture()
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}

    def reward(prompts, completions, completion_ids, answer, prompt_len, **_):
        verdicts = verifier.verify_batch(list(completions), list(answer))
        scores = [float(v.correct and not v.timed_out) for v in verdicts]
        capture.rewards += scores
        capture.timeouts += sum(v.timed_out for v in verdicts)
        capture.prompt_lens += [int(n) for n in prompt_len]
        capture.response_lens += [len(ids) for ids in completion_ids]
        capture.truncated += [not ids or ids[-1] not in eos for ids in completion_ids]
        return scores

    reward.__name__ = "rlscale_verifier"

    class Trainer(TRLGRPOTrainer):
        def get_decay_parameter_names(self, model):  # rlscale decays every parameter
            return [name for name, _ in model.named_parameters()]

    class Callback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            recorder.begin(trainer)

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step % U == 0:
                recorder.t0 = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            recorder.log(trainer, state.global_step, dict(logs or {}))

    trainer = Trainer(model=str(model_path), reward_funcs=reward, args=args,
                      train_dataset=dataset, processing_class=tokenizer, callbacks=[Callback()])
    trainer.remove_callback(PrinterCallback)  # the run log is steps.jsonl, not printed dicts

    # The run directory (main process only): records after the checkpoint's step are dropped.
    writer = None
    if main:
        meta = native.run_meta(config, model_path=model_path, n_compute=n_compute,
                               counted=counted, data=data, n_steps=n_steps)
        meta["versions"] = {"trl": trl.__version__}
        writer = RunWriter(run_dir, meta, resume=resume)
        writer.truncate_after(start_step if latest is not None else -1)
    totals = _totals_from(read_jsonl(run_dir / "steps.jsonl") if main else [], start_step)
    old_pass = args.gradient_accumulation_steps % (args.steps_per_generation * config.epochs) != 0
    recorder = _Recorder(config=config, data=data, writer=writer, totals=totals, U=U,
                         n_compute=n_compute, shape=shape, capture=capture,
                         eval_steps=eval_steps, verifier=verifier, start_step=start_step,
                         old_pass=old_pass or config.use_vllm)
    with verifier, (writer if writer is not None else contextlib.nullcontext()):
        trainer.train(resume_from_checkpoint=str(latest) if latest is not None else None)
    return run_dir


class _Renderer:
    """Just enough of native.GRPOTrainer for its `render` (chat template, left truncation)."""

    def __init__(self, config, tokenizer):
        self.config, self.tokenizer = config, tokenizer


class _EvalView:
    """Just enough of native.GRPOTrainer for native._evaluate: the same eval records and seeds."""

    def __init__(self, config, model, tokenizer):
        from rlscale.rl.rollout import HFRolloutEngine

        self.config, self.model, self.tokenizer = config, model, tokenizer
        self.engine = HFRolloutEngine(model, tokenizer, batch_size=config.rollout_batch_size)

    def precision(self):
        if self.config.dtype == "float32":
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type
        return torch.autocast(device_type=device, dtype=getattr(torch, self.config.dtype))


class _NoWriter:
    """The run log of a process that is not the main one: records are the main one's job."""

    def log_eval(self, record) -> None:
        pass


class _Recorder:
    """Turns TRL's per-update logs and the reward function's capture into rlscale records."""

    def __init__(self, *, config, data, writer, totals, U, n_compute, shape, capture,
                 eval_steps, verifier, start_step, old_pass):
        self.config, self.data, self.writer, self.totals = config, data, writer, totals
        self.U, self.n_compute, self.shape, self.capture = U, n_compute, shape, capture
        self.eval_steps, self.verifier, self.start_step = eval_steps, verifier, start_step
        self.old_pass = old_pass
        self.logs: list[dict] = []
        self.t0 = time.perf_counter()

    def begin(self, trainer) -> None:
        if self.start_step == 0:
            self.evaluate(trainer, 0)

    def evaluate(self, trainer, step: int) -> None:
        from trl.models import unwrap_model_for_generation

        from rlscale.rl import trainer as native

        # Every process evaluates, in step (ZeRO-3 gathers the weights, FSDP's forward passes
        # are collective); the same seeds give each the same result, the main one writes it.
        with warnings.catch_warnings(), unwrap_model_for_generation(
                trainer.model_wrapped, trainer.accelerator) as model:
            warnings.simplefilter("ignore", FutureWarning)  # transformers' renamed checkpointing
            native._evaluate(_EvalView(self.config, model, trainer.processing_class),
                             self.data, step, self.verifier, self.writer or _NoWriter())
        trainer.accelerator.wait_for_everyone()

    def log(self, trainer, global_step: int, logs: dict) -> None:
        if "train_runtime" in logs:  # the end-of-training summary, not an update
            return
        self.logs.append(logs)
        if global_step % self.U:
            return
        step = global_step // self.U
        from accelerate.utils import gather_object

        cap = self.capture
        rewards = gather_object(cap.rewards)
        prompt_lens, response_lens = gather_object(cap.prompt_lens), gather_object(cap.response_lens)
        truncated = gather_object(cap.truncated)
        timeouts = sum(gather_object([cap.timeouts]))
        cap.clear()
        updates, self.logs = self.logs, []
        if self.writer is not None:
            self.writer.log_step(self.record(step, updates, rewards, prompt_lens, response_lens,
                                             truncated, timeouts))
        if step in self.eval_steps:
            self.evaluate(trainer, step)
        self.t0 = time.perf_counter()

    def record(self, step, updates, rewards, prompt_lens, response_lens, truncated, timeouts):
        from rlscale.models.flops import paper_compute, step_flops
        from rlscale.runs.schema import StepRecord

        cfg, tot, G = self.config, self.totals, self.config.group_size
        batch = self.data.schedule[(step - 1) * cfg.prompts_per_step: step * cfg.prompts_per_step]
        elapsed = time.perf_counter() - self.t0
        prompt_tokens, response_tokens = sum(prompt_lens), sum(response_lens)
        tokens = prompt_tokens + response_tokens
        flops = step_flops(self.shape, prompt_lens, response_lens, group_size=1,
                           update_epochs=cfg.epochs, old_policy_pass=self.old_pass,
                           reference_pass=cfg.kl_coef > 0)
        C_step = paper_compute(self.n_compute, tokens)
        tot["D"] += len(batch)
        tot["T"] += tokens
        tot["prompt_tokens"] += prompt_tokens
        tot["response_tokens"] += response_tokens
        tot["C"] += C_step
        tot["flops"] += flops.total
        tot["reward_timeouts"] += timeouts
        seen = {p.id for p in self.data.schedule[: step * cfg.prompts_per_step]}
        r = torch.tensor(rewards, dtype=torch.float64)
        by_group = r.view(-1, G)

        def mean_of(key):
            values = [u[key] for u in updates if u.get(key) is not None]
            return float(np.mean(values)) if values else None

        figures = {
            "step": step, "D": tot["D"], "D_unique": len(seen), "epoch": tot["D"] / self.data.n_distinct,
            "prompts": len(batch), "sequences": len(rewards),
            "prompt_tokens": prompt_tokens, "response_tokens": response_tokens, "tokens": tokens,
            "T": tot["T"], "prompt_tokens_total": tot["prompt_tokens"],
            "response_tokens_total": tot["response_tokens"], "C_step": C_step, "C": tot["C"],
            "flops_step": flops.total, "flops": tot["flops"],
            "reward_timeouts_total": tot["reward_timeouts"],
            "flops_generation": flops.generation,
            "reward": float(r.mean()),
            "reward_std": float(r.std()) if len(r) > 1 else 0.0,
            "reward_timeouts": timeouts,
            "solved_all_frac": float((by_group.min(1).values == 1).double().mean()),
            "solved_none_frac": float((by_group.max(1).values == 0).double().mean()),
            "response_len": response_tokens / len(response_lens),
            "response_len_max": max(response_lens),
            "truncated_frac": sum(truncated) / len(truncated),
            "policy_loss": mean_of("policy_loss"),
            "kl": mean_of("kl") if cfg.kl_coef > 0 else None,
            "entropy": mean_of("entropy"),
            "clip_frac": mean_of("clip_ratio/region_mean"),
            "grad_norm": mean_of("grad_norm"),
            "updates": len(updates),
            "lr": updates[-1].get("learning_rate"),
            "time_step": elapsed,
            "tokens_per_s": tokens / max(elapsed, 1e-9),
            "gflops_per_s": flops.total / max(elapsed, 1e-9) / 1e9,
        }
        return StepRecord.native(**{k: v for k, v in figures.items() if v is not None}).to_record()


# ----------------------------------------------------------------------------- resume


def latest_checkpoint(root: Path) -> Path | None:
    """The TRL checkpoint of the highest global step that was completely written (HF writes
    trainer_state.json after the weights, optimizer and RNG states)."""
    done = [p for p in Path(root).glob(f"{CHECKPOINT_PREFIX}*")
            if p.is_dir() and (p / "trainer_state.json").exists()
            and p.name.removeprefix(CHECKPOINT_PREFIX).isdigit()]
    return max(done, key=_global_step, default=None)


def _global_step(path: Path) -> int:
    return int(path.name.removeprefix(CHECKPOINT_PREFIX))


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    """A checkpoint is only continued under the config that wrote it (meta.json keeps it)."""
    from rlscale.rl.checkpoint import config_diff

    meta_path = run_dir / "meta.json"
    if not meta_path.exists():
        return
    meta = json.loads(meta_path.read_text())
    if meta.get("config_hash") not in (None, config.config_hash()):
        old = TrainConfig.model_validate(meta["config"]).hashed_fields()
        diff = config_diff(old, config.hashed_fields())
        raise ConfigError(
            f"{run_dir}: checkpoint was written with another config; differing keys: "
            + ", ".join(f"'{k}' (checkpoint {a!r}, now {b!r})" for k, a, b in diff))


def _totals_from(steps: list[dict], start_step: int) -> dict:
    """The cumulative accounting at `start_step`, from its (kept) step record."""
    totals = {"D": 0, "T": 0, "prompt_tokens": 0, "response_tokens": 0, "C": 0.0, "flops": 0.0,
              "reward_timeouts": 0}
    last = next((r for r in steps if r.get("step") == start_step), None) if start_step else None
    if last is not None:
        totals |= {"D": last["D"], "T": last["T"], "prompt_tokens": last["prompt_tokens_total"],
                   "response_tokens": last["response_tokens_total"], "C": last["C"],
                   "flops": last["flops"], "reward_timeouts": last["reward_timeouts_total"]}
    return totals
