"""The GRPO training loop: rollouts -> rewards -> advantages -> clipped updates, with exact accounting.

One step (the paper's recipe, section 2):
  1. take the next `prompts_per_step` prompts of the data schedule (curriculum, reuse tau);
  2. sample G responses each at temperature 1.0, keeping the sampling log-probs;
  3. score them with the Verifier (a timed-out check scores 0 and is counted);
  4. group-normalised advantages;
  5. reference log-probs (frozen initial policy) for the k3 KL;
  6. prompts_per_step / mini_batch_prompts AdamW updates (1 epoch), grad-clipped, constant lr.
The "old" log-probs of the ratio are the sampling log-probs: rollouts come from the current policy,
so they are the old policy's (on-policy; `recompute_old_logprobs=True` recomputes them as VeRL does,
and so does an engine that reports none). After the updates the engine is synced to the policy
(`RolloutEngine.sync_weights`). Every log-prob pass goes through `scoring.response_logprobs`.
Every step appends one record with the accounting (D, tokens, C = 6 N T, total FLOPs) to
steps.jsonl; evaluation writes evals.jsonl at step 0, every `eval_every` steps and at the end.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers.utils import logging as hf_logging

from rlscale import __version__
from rlscale.data.arithmetic import arithmetic_problems
from rlscale.data.curriculum import reuse_schedule, stratified_holdout
from rlscale.data.loaders import load_problems
from rlscale.data.problem import Problem
from rlscale.errors import ConfigError
from rlscale.models import LADDER, count_params, load_model, scoring
from rlscale.models.flops import ModelShape, paper_compute, step_flops
from rlscale.pretrain.family import member_path
from rlscale.reward import Verifier
from rlscale.rl import checkpoint as ckpt
from rlscale.rl.config import BUILTIN_TASK, TrainConfig
from rlscale.rl.evaluate import evaluate
from rlscale.rl.grpo import group_advantages, grpo_loss
from rlscale.rl.rollout import HFRolloutEngine, RolloutEngine, Rollouts, render_prompt
from rlscale.runs import RunWriter
from rlscale.runs.schema import TIMING_FIELDS, EvalRecord, RunMeta, StepRecord  # noqa: F401
from rlscale.threads import set_torch_threads

DEFAULT_BUILTIN_PROBLEMS = 4096
MIN_BUCKET_SEQUENCES = 32
# Record fields that measure time (TIMING_FIELDS): the only ones that differ between two runs of
# one config. Records are built through rlscale.runs.schema (docs/run-format.md).


# ----------------------------------------------------------------------------- data


@dataclass
class RunData:
    """Everything a run reads: the prompt schedule and the eval sets."""

    train: list[Problem]
    schedule: list[Problem]  # the prompts in the order they are consumed, steps * prompts_per_step
    eval_sets: dict[str, list[Problem]]

    @cached_property
    def n_distinct(self) -> int:
        """Distinct prompts the schedule cycles through (the denominator of `epoch`)."""
        return len({p.id for p in self.schedule})


def load_run_data(config: TrainConfig, n_steps: int | None = None) -> RunData:
    """Training problems, hold-out and eval sets, and the schedule of `n_steps` steps."""
    data = config.data
    if data.source == BUILTIN_TASK:
        n = data.n_problems or DEFAULT_BUILTIN_PROBLEMS
        # The built-in task keeps its own train/test problem space apart (no leak into the
        # hold-out whatever the seeds); the hold-out is drawn from the test side, stratified.
        train = arithmetic_problems(n, seed=data.seed, split="train", tiers=data.tiers)
        if data.holdout is None:
            pool = arithmetic_problems(4 * (data.holdout_easy + data.holdout_hard),
                                       seed=data.seed, split="test", tiers=data.tiers)
            holdout = _stratified(pool, config)[1]
    else:
        train = load_problems(data.source, limit=data.n_problems)
        if data.holdout is None:
            train, holdout = _stratified(train, config)
    if data.holdout is not None:
        holdout = load_problems(data.holdout, limit=data.eval_limit)
        held = {p.prompt_text() for p in holdout}
        train = [p for p in train if p.prompt_text() not in held]  # never train on the hold-out
    if not train:
        raise ConfigError(f"key 'data.source': no training problems in {data.source!r}")
    eval_sets = {"holdout": holdout[: data.eval_limit]}
    for name, path in data.eval_sets.items():
        eval_sets[name] = load_problems(path, limit=data.eval_limit)
    for name, problems in eval_sets.items():
        if not problems:
            raise ConfigError(f"key 'data.eval_sets': eval set {name!r} is empty")

    steps = n_steps or config.n_steps(len(train))
    total = steps * config.prompts_per_step
    if total > len(train):
        raise ConfigError(
            f"key 'steps': {steps} steps x {config.prompts_per_step} prompts = {total} prompts, "
            f"but data.source has {len(train)} training problems; use fewer steps, more "
            "problems (data.n_problems) or data reuse (data.reuse_tau)")
    if total % data.reuse_tau:
        raise ConfigError(f"key 'data.reuse_tau': {data.reuse_tau} does not divide the run's "
                          f"{total} prompts")
    schedule = reuse_schedule(train, total=total, tau=data.reuse_tau, seed=data.seed,
                              order=data.order)
    return RunData(train=train, schedule=schedule, eval_sets=eval_sets)


def _stratified(problems: list[Problem], config: TrainConfig):
    d = config.data
    try:
        return stratified_holdout(problems, n_easy=d.holdout_easy, n_hard=d.holdout_hard,
                                  seed=d.seed)
    except ValueError as e:
        raise ConfigError(f"key 'data.holdout_easy/holdout_hard': {e}") from None


# ----------------------------------------------------------------------------- model


def resolve_model_path(config: TrainConfig) -> Path:
    """A family size -> its pretrained weights by the run's family recipe (shipped, or built and
    cached on first use); else a local model directory."""
    if config.model in LADDER:
        return member_path(config.model, config.variant, root=config.family_root,
                           config=config.member_recipe())
    path = Path(config.model).expanduser()
    if not path.is_dir():
        raise ConfigError(f"key 'model': {config.model!r} is neither a family size "
                          f"({', '.join(LADDER)}) nor a model directory")
    return path


def compute_n(config: TrainConfig, model: torch.nn.Module) -> float:
    """N of the paper's C = 6 N T, as the config chooses."""
    counted = count_params(model)
    if config.n_for_compute == "nominal":
        return float(config.nominal_n)
    if config.n_for_compute == "counted_non_embedding":
        return float(counted.non_embedding)
    return float(counted.total)


# ----------------------------------------------------------------------------- one step


@dataclass
class Totals:
    """Cumulative accounting, carried across steps and saved in checkpoints."""

    D: int = 0
    T: int = 0
    prompt_tokens: int = 0
    response_tokens: int = 0
    C: float = 0.0
    flops: float = 0.0
    reward_timeouts: int = 0
    seen: set[str] = field(default_factory=set)

    def to_json(self) -> dict:
        return {**{k: getattr(self, k) for k in ("D", "T", "prompt_tokens", "response_tokens",
                                                 "C", "flops", "reward_timeouts")},
                "seen": sorted(self.seen)}

    @classmethod
    def from_json(cls, d: dict) -> Totals:
        return cls(**{**d, "seen": set(d["seen"])})


class GRPOTrainer:
    """Holds the models, optimizer and engine; `step(problems)` runs one GRPO step.

    engine: the `RolloutEngine` to sample with (None: an `HFRolloutEngine` over `model`, which
    shares its module); it is synced to `model` after every step's updates.
    """

    def __init__(self, config: TrainConfig, model, tokenizer, *, reference=None,
                 engine: RolloutEngine | None = None):
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        # The frozen initial policy, only needed when the KL term is on. Kept in float32 like the
        # master weights and run under the same autocast, so that before the first update its
        # log-probs equal the policy's exactly (a bf16 copy would differ in its norm weights'
        # rounding and put a floor under the KL).
        self.reference = reference
        if self.reference is None and config.kl_coef > 0:
            self.reference = copy.deepcopy(model).eval().requires_grad_(False)
        fused = next(model.parameters()).device.type in ("cpu", "cuda")  # one kernel, same math
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
            betas=config.adam_betas, fused=fused or None)
        self.engine = engine if engine is not None else HFRolloutEngine(
            model, tokenizer, batch_size=config.rollout_batch_size)
        self.shape = ModelShape.from_model(model)
        self.n_compute = compute_n(config, model)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The forward passes' compute dtype over the float32 master weights (None: float32)."""
        return None if self.config.dtype == "float32" else getattr(torch, self.config.dtype)

    def precision(self):
        """The forward passes' precision: autocast to bfloat16 over float32 master weights."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device.type
        return torch.autocast(device_type=device, dtype=self.autocast_dtype)

    def render(self, problems: list[Problem]) -> list[str]:
        """Chat template or raw text, left-truncated to max_prompt_tokens."""
        limit = self.config.max_prompt_tokens
        texts = []
        for p in problems:
            text = render_prompt(p, self.tokenizer)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) > limit:
                text = self.tokenizer.decode(ids[-limit:])
            texts.append(text)
        return texts

    def step(self, step: int, problems: list[Problem], verifier: Verifier) -> dict:
        """One GRPO step on `problems`; returns the step's own figures (no cumulative ones)."""
        cfg, G = self.config, self.config.group_size
        t0 = time.perf_counter()

        self.model.eval()
        with torch.no_grad(), self.precision():
            rollouts = self.engine.generate(
                self.render(problems), n=G, temperature=cfg.temperature, top_p=cfg.top_p,
                max_new_tokens=cfg.max_response_tokens, seed=_step_seed(cfg.seed, step))
        t_gen = time.perf_counter()

        golds = [p.answer for p in problems for _ in range(G)]
        verdicts = verifier.verify_batch(rollouts.texts, golds)
        rewards = torch.tensor([float(v.correct and not v.timed_out) for v in verdicts])
        advantages = group_advantages(rewards, G, std_normalize=cfg.std_normalize,
                                      eps=cfg.adv_eps)

        # Per-token tensors live beside the model (the engine returns them on the CPU).
        device = next(self.model.parameters()).device
        mask = rollouts.response_mask.to(device)
        advantages = advantages.to(device)
        recompute_old = cfg.recompute_old_logprobs or rollouts.sampling_logprobs is None
        if recompute_old:
            old_logp = self._score(self.model, rollouts, as_updates=True)
        else:
            old_logp = rollouts.sampling_logprobs.to(device)
        ref_logp = self._score(self.reference, rollouts) if cfg.kl_coef > 0 else None

        self.model.train()
        stats, grad_norms = [], []
        rows_per_update = cfg.mini_batch_prompts * G
        for _epoch in range(cfg.epochs):
            for start in range(0, len(rollouts), rows_per_update):
                rows = range(start, start + rows_per_update)
                norm, mb_stats = self._update(rollouts, rows, mask, old_logp, ref_logp,
                                              advantages)
                grad_norms.append(norm)
                stats += mb_stats
        self.model.eval()
        self.engine.sync_weights(self.model)  # the next rollouts sample the updated policy
        t_end = time.perf_counter()

        flops = step_flops(self.shape, rollouts.prompt_lens, rollouts.response_lens,
                           group_size=G, update_epochs=cfg.epochs,
                           old_policy_pass=recompute_old,
                           reference_pass=cfg.kl_coef > 0)
        prompt_tokens, response_tokens = sum(rollouts.prompt_lens), sum(rollouts.response_lens)
        n_tokens = max(1, sum(s.tokens for s in stats))

        def token_mean(name: str) -> float:
            return sum(getattr(s, name) * s.tokens for s in stats) / n_tokens

        return {
            "prompt_tokens": prompt_tokens,
            "response_tokens": response_tokens,
            "tokens": prompt_tokens + response_tokens,
            "flops_step": flops.total,
            "flops_generation": flops.generation,
            "reward": float(rewards.mean()),
            "reward_std": float(rewards.std()) if len(rewards) > 1 else 0.0,
            "reward_timeouts": sum(v.timed_out for v in verdicts),
            "solved_all_frac": float((rewards.view(-1, G).min(1).values == 1).float().mean()),
            "solved_none_frac": float((rewards.view(-1, G).max(1).values == 0).float().mean()),
            "response_len": response_tokens / len(rollouts),
            "response_len_max": max(rollouts.response_lens),
            "truncated_frac": 1.0 - sum(rollouts.finished) / len(rollouts),
            "policy_loss": token_mean("policy_loss"),
            "kl": token_mean("kl"),
            "entropy": token_mean("entropy"),
            "clip_frac": token_mean("clip_frac"),
            "ratio_mean": token_mean("ratio_mean"),
            "ratio_max": max(s.ratio_max for s in stats),
            "ratio_min": min(s.ratio_min for s in stats),
            "grad_norm": float(np.mean(grad_norms)),
            "updates": len(grad_norms),
            "lr": self.optimizer.param_groups[0]["lr"],
            "time_generation": t_gen - t0,
            "time_step": t_end - t0,
        }

    def _update(self, rollouts: Rollouts, rows: range, mask, old_logp, ref_logp, advantages):
        """One optimizer step on a mini-batch, gradients accumulated over its micro-batches.

        The loss is normalised by the whole mini-batch's token (or sequence) count, so however
        the rows are split the gradient is the mini-batch's.
        """
        cfg = self.config
        total_tokens = float(mask[rows.start:rows.stop].sum().clamp(min=1.0))
        self.optimizer.zero_grad(set_to_none=True)
        stats = []
        for idx in self._micro_batches(rollouts, rows):
            logp, entropy = self._logprobs(self.model, rollouts, idx, with_entropy=True)
            width = logp.shape[1]
            loss, st = grpo_loss(
                logp, old_logp[idx, :width], advantages[idx], mask[idx, :width],
                ref_logp=ref_logp[idx, :width] if ref_logp is not None else None,
                entropy=entropy, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
                kl_coef=cfg.kl_coef, kl_clamp=cfg.kl_clamp, entropy_coef=cfg.entropy_coef,
                loss_agg=cfg.loss_agg, total_tokens=total_tokens, total_seqs=float(len(rows)))
            loss.backward()
            stats.append(st)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        return float(norm), stats

    def _score(self, model, rollouts: Rollouts, *, as_updates: bool = False) -> torch.Tensor:
        """Log-probs [B, R] of every response token under `model` (no grad), 0 on padding.

        as_updates: score in exactly the micro-batches the updates use (old-policy log-probs: in
        low precision a token's log-prob depends on its batch's shape, and the first update's
        ratios must be 1). Otherwise all rows are bucketed at once (fewer, fuller passes).
        """
        device = next(model.parameters()).device
        out = torch.zeros(rollouts.response_mask.shape, device=device)
        span = self.config.mini_batch_prompts * self.config.group_size if as_updates \
            else len(rollouts)
        with torch.inference_mode():
            for start in range(0, len(rollouts), span):
                for idx in self._micro_batches(rollouts, range(start, start + span)):
                    logp, _ = self._logprobs(model, rollouts, idx)
                    out[idx, : logp.shape[1]] = logp
        return out

    def _micro_batches(self, rollouts: Rollouts, rows: range) -> list[torch.Tensor]:
        """Row indices of `rows` (whole groups of G) in micro-batches of similar length.

        Groups are sorted by their longest sequence and cut into `length_buckets` micro-batches
        (more if micro_batch_sequences caps the rows per pass): each pass is padded only to its
        own longest sequence. A group's G rows stay together so that they share one prompt pass.
        """
        cfg, G = self.config, self.config.group_size
        groups = range(rows.start // G, rows.stop // G)
        longest = [max(rollouts.prompt_lens[i] + rollouts.response_lens[i]
                       for i in range(g * G, g * G + G)) for g in groups]
        order = torch.argsort(torch.tensor(longest), stable=True) + groups.start
        per_pass = max(1, (cfg.micro_batch_sequences or len(rows)) // G)
        # Passes of fewer than ~32 sequences cost more in per-call overhead than padding saves.
        buckets = max(1, min(cfg.length_buckets, len(rows) // MIN_BUCKET_SEQUENCES))
        n_chunks = max(min(buckets, len(groups)), -(-len(groups) // per_pass))
        return [(chunk[:, None] * G + torch.arange(G)).flatten()
                for chunk in torch.tensor_split(order, n_chunks) if len(chunk)]

    def _logprobs(self, model, rollouts: Rollouts, idx: torch.Tensor, *,
                  with_entropy: bool = False):
        """Response-token log-probs (and entropies) of rows `idx` (whole groups, in order), in the
        run's precision: `scoring.response_logprobs` with each group's prompt run once and its KV
        cache shared by the group's G responses (as the rollout engine samples them), so the
        prompt side of the forward and backward costs 1/G. Padding is trimmed to the longest
        prompt and response among the rows.
        Returns (logp [b, R'], entropy [b, R'] or None) with R' the longest response.
        """
        logp, entropy = scoring.response_logprobs(
            model, rollouts.input_ids[idx], rollouts.attention_mask[idx], rollouts.prompt_width,
            temperature=self.config.temperature, group_size=self.config.group_size,
            with_entropy=with_entropy, autocast=self.autocast_dtype)
        if entropy is not None and not self.config.entropy_coef:
            entropy = entropy.detach()  # logged only
        return logp, entropy


def _step_seed(seed: int, step: int) -> int:
    """A sampling seed per (run seed, step): resumed runs sample exactly what they would have."""
    return (seed * 1_000_003 + step) % (2**31)


# ----------------------------------------------------------------------------- the run


def run_meta(config: TrainConfig, *, model_path: Path, n_compute: float, counted, data: RunData,
             n_steps: int) -> dict:
    """meta.json's trainer keys (either backend)."""
    return RunMeta.native(
        run_id=config.run_name, experiment=config.experiment, model=config.model,
        model_path=str(model_path), family=config.family or _family(config),
        variant=config.variant, order=config.data.order,
        N=n_compute, N_total=counted.total,
        N_nonembed=counted.non_embedding, n_for_compute=config.n_for_compute,
        seed=config.seed, tau=config.data.reuse_tau, G=config.group_size,
        prompts_per_step=config.prompts_per_step, steps=n_steps,
        n_train_problems=len(data.train),
        eval_sets={k: len(v) for k, v in data.eval_sets.items()},
        config=config.model_dump(mode="json"), config_hash=config.config_hash(),
        rlscale_version=__version__, torch_version=torch.__version__,
    ).to_record()


def _check_same_backend(config: TrainConfig) -> None:
    """A run is resumed by the backend that started it: each keeps its own checkpoints, so the
    other one would find none and start over, wiping the records already written."""
    import json

    meta_path = config.run_dir() / "meta.json"
    if not meta_path.exists():
        return
    try:
        previous = json.loads(meta_path.read_text()).get("config", {}).get("backend", "native")
    except (OSError, ValueError, AttributeError):
        return  # an unreadable meta.json is the run log's to report
    if previous != config.backend:
        raise ConfigError(f"{config.run_dir()}: this run was started with backend={previous}; "
                          f"resume it with backend={previous} (not {config.backend}), or give "
                          "another out directory")


def train(config: TrainConfig, *, resume: bool = False, progress: bool = True) -> Path:
    """Run (or resume) a GRPO run; returns the run directory. backend=trl runs it through TRL's
    GRPOTrainer (rlscale.rl.trl_backend) with the same schedule, reward, evals and records."""
    if resume:
        _check_same_backend(config)
    if config.backend == "trl":
        from rlscale.rl import trl_backend

        return trl_backend.train(config, resume=resume, progress=progress)
    set_torch_threads(config.threads)
    hf_logging.disable_progress_bar()  # our own bar shows the run; HF's loading bars are noise
    _seed_everything(config.seed)
    run_dir = config.run_dir()

    model_path = resolve_model_path(config)
    _deterministic(config.device)
    # float32 master weights whatever the compute precision (GRPOTrainer.precision).
    model, tokenizer = load_model(model_path, dtype=torch.float32, device=config.device)
    data = load_run_data(config)
    n_steps = len(data.schedule) // config.prompts_per_step
    trainer = GRPOTrainer(config, model, tokenizer)
    meta = run_meta(config, model_path=model_path, n_compute=trainer.n_compute,
                    counted=count_params(model), data=data, n_steps=n_steps)

    totals, start_step = Totals(), 0
    latest = ckpt.latest_checkpoint(run_dir) if resume else None
    if latest is not None:
        state = ckpt.load_checkpoint(latest, config, model, trainer.optimizer)
        trainer.engine.sync_weights(model)  # the checkpoint's weights, not the initial ones
        totals, start_step = Totals.from_json(state["totals"]), state["step"]
        writer = RunWriter(run_dir, meta, resume=True)
        writer.truncate_after(start_step)
    else:
        writer = RunWriter(run_dir, meta, resume=resume)
        if resume:
            writer.truncate_after(-1)  # nothing saved yet: start over cleanly

    eval_steps = {0, n_steps}
    if config.eval_every:
        eval_steps |= set(range(0, n_steps + 1, config.eval_every))
    ckpt_steps = {n_steps}
    if config.checkpoint_every:
        ckpt_steps |= set(range(config.checkpoint_every, n_steps + 1, config.checkpoint_every))

    with writer, Verifier(workers=config.reward_workers, timeout=config.reward_timeout) as \
            verifier, _progress(progress) as bar:
        task = bar.add_task(config.run_name, total=n_steps, completed=start_step, info="")
        last_pass1: dict[str, float] = {}
        if start_step == 0:
            last_pass1 = _evaluate(trainer, data, 0, verifier, writer)
        for step in range(start_step + 1, n_steps + 1):
            batch = data.schedule[(step - 1) * config.prompts_per_step:
                                  step * config.prompts_per_step]
            figures = trainer.step(step, batch, verifier)
            record = _account(step, batch, figures, totals, trainer, data)
            writer.log_step(record)
            if step in eval_steps:
                last_pass1 = _evaluate(trainer, data, step, verifier, writer)
            if step in ckpt_steps:
                ckpt.save_checkpoint(run_dir, step, config, model, trainer.optimizer,
                                     totals=totals.to_json(), keep=config.keep_checkpoints)
            info = (f"reward {record['reward']:.3f}  tok/s {record['tokens_per_s']:.0f}"
                    + "".join(f"  {k} {v:.3f}" for k, v in last_pass1.items()))
            bar.update(task, completed=step, info=info)
    return run_dir


def _account(step: int, batch: list[Problem], figures: dict, totals: Totals, trainer, data):
    """The step record: this step's figures plus the cumulative accounting (docs/run-format.md)."""
    cfg = trainer.config
    totals.D += len(batch)
    totals.seen.update(p.id for p in batch)
    totals.prompt_tokens += figures["prompt_tokens"]
    totals.response_tokens += figures["response_tokens"]
    totals.T += figures["tokens"]
    C_step = paper_compute(trainer.n_compute, figures["tokens"])
    totals.C += C_step
    totals.flops += figures["flops_step"]
    totals.reward_timeouts += figures["reward_timeouts"]
    record = StepRecord.native(**{
        "step": step,
        "D": totals.D,
        "D_unique": len(totals.seen),
        "epoch": totals.D / data.n_distinct,
        "prompts": len(batch),
        "sequences": len(batch) * cfg.group_size,
        **{k: figures[k] for k in ("prompt_tokens", "response_tokens", "tokens")},
        "T": totals.T,
        "prompt_tokens_total": totals.prompt_tokens,
        "response_tokens_total": totals.response_tokens,
        "C_step": C_step,
        "C": totals.C,
        "flops_step": figures["flops_step"],
        "flops": totals.flops,
        "reward_timeouts_total": totals.reward_timeouts,
        **{k: v for k, v in figures.items()
           if k not in ("prompt_tokens", "response_tokens", "tokens", "flops_step")},
        "tokens_per_s": figures["tokens"] / max(figures["time_step"], 1e-9),
        "gflops_per_s": figures["flops_step"] / max(figures["time_step"], 1e-9) / 1e9,
    }).to_record()
    return record


def _evaluate(trainer: GRPOTrainer, data: RunData, step: int, verifier, writer) -> dict:
    cfg = trainer.config
    pass1 = {}
    for name, problems in data.eval_sets.items():
        result = _eval_once(trainer, problems, verifier, _step_seed(cfg.seed + 7919, step))
        record = {
            "step": step, "eval_set": name, "n_problems": result.n_problems,
            "samples": result.samples, "pass1": result.pass1, "L": 1.0 - result.pass1,
            "estimator": result.estimator, "stderr": result.stderr,
            "pass1_sampled": result.pass1_sampled, "pass1_canonical": result.pass1_canonical,
            "temperature": 0.0 if cfg.eval_greedy else cfg.eval_temperature,
            "greedy": cfg.eval_greedy, "reward_timeouts": result.n_timeouts,
            "time_eval": result.wall_time}
        if step == 0 and cfg.eval_noise_repeats:
            # The eval noise floor: the same (initial) policy evaluated with other sampling seeds.
            repeats = [result.pass1] + [
                _eval_once(trainer, problems, verifier, _step_seed(cfg.seed + 7919, -r)).pass1
                for r in range(1, cfg.eval_noise_repeats + 1)]
            record |= {"noise_std": float(np.std(repeats, ddof=1)),
                       "noise_repeats": len(repeats)}
        writer.log_eval(EvalRecord.native(**record))
        pass1[name] = result.pass1
    return pass1


def _eval_once(trainer: GRPOTrainer, problems: list[Problem], verifier, seed: int):
    cfg = trainer.config
    with trainer.precision():
        return evaluate(
            trainer.model, trainer.tokenizer, problems, verifier=verifier,
            samples=cfg.eval_samples, temperature=cfg.eval_temperature, top_p=1.0,
            greedy=cfg.eval_greedy, max_new_tokens=cfg.max_response_tokens,
            batch_size=cfg.eval_batch_size, seed=seed, engine=trainer.engine,
            estimator=cfg.eval_estimator)


def _family(config: TrainConfig) -> str:
    return "mini" if config.model in LADDER else Path(config.model).name.split("-")[0].lower()


def _deterministic(device: str) -> None:
    """The determinism settings that exist on the device. CPU float32: nothing to do (same seed,
    same records, except the timing fields). CUDA: cuBLAS's fixed workspace (it must be set before
    cuBLAS starts), deterministic algorithms where torch has them (warn elsewhere rather than
    fail) and no cuDNN autotuning; records can still differ in the last bits where a kernel has
    no deterministic version (docs/training.md)."""
    if not device.startswith("cuda"):
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[info]}"), disable=not enabled)


