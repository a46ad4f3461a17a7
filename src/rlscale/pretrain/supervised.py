"""Supervised pretraining of one model: next-token loss on the solution, one fixed token budget.

Every member of the miniature family is trained by this one loop with one config: the same
corpus (`pretrain.corpus`), the same batches in the same order, the same number of steps and
one learning-rate rule, so that what differs between sizes is only the model (as in a real
family). The loop reads top to bottom:

    for step in 1..steps:
        batch = corpus[(step-1)*B : step*B]     # prompt -> solution text + eos
        loss  = mean next-token loss on the solution tokens (the prompt is context only)
        AdamW step, grad-clipped, lr = warm-up then cosine decay to `final_lr_fraction`

It is deterministic (no dropout; the corpus and its order are pure functions of the seed) and
resumable: every `checkpoint_every` steps the model, optimizer and step are written atomically
(`models.training_state`), and a restarted build continues from the last one with
the same result as an uninterrupted build.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rlscale.data.arithmetic import tiers_problem
from rlscale.models.training_state import read_training_state, write_training_state

CHECKPOINT = "pretrain_state"


class PretrainConfig(BaseModel):
    """One pretraining stage (the same for every size of a family)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(6000, ge=1, description="Optimizer steps (the token budget).")
    batch_size: int = Field(64, ge=1, description="Solutions per step.")
    lr: float = Field(3e-3, gt=0, description=(
        "AdamW peak learning rate at hidden size `lr_reference_width`; other widths get "
        "lr * (reference / hidden) ** lr_width_exponent (one rule for every size)."))
    lr_reference_width: int = Field(128, ge=1, description="Width at which the peak is `lr`.")
    lr_width_exponent: float = Field(0.5, ge=0, description=(
        "0: the same lr for every width; 1: lr ~ 1/width (muP for Adam's hidden matrices). "
        "0.5 measured best at both ends of the ladder (docs/miniature.md)."))
    warmup_steps: int = Field(50, ge=0, description="Linear warm-up steps.")
    final_lr_fraction: float = Field(0.1, ge=0, le=1, description=(
        "The cosine decay ends at this fraction of the peak."))
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, gt=0, description="Gradient-norm clip.")
    flaw_rate: float = Field(0.5, ge=0, lt=1, description=(
        "Share of corpus solutions with one slip (pretrain.corpus)."))
    tiers: list[int] | None = Field(None, description=(
        "Task tiers of the corpus (None: the default tiers 1-6)."))
    seed: int = Field(0, description="Seed of the corpus (and of nothing else: no dropout).")
    checkpoint_every: int = Field(500, ge=1, description="Steps between resumable states.")

    @field_validator("tiers")
    @classmethod
    def _known_tiers(cls, tiers: list[int] | None) -> list[int] | None:
        problem = None if tiers is None else tiers_problem(tiers)
        if problem is not None:
            raise ValueError(problem)
        return tiers

    def peak_lr(self, hidden_size: int) -> float:
        return self.lr * (self.lr_reference_width / hidden_size) ** self.lr_width_exponent

    def learning_rate(self, step: int, hidden_size: int) -> float:
        """lr of 0-based `step`: linear warm-up, then cosine from the peak to the final fraction."""
        peak = self.peak_lr(hidden_size)
        if step < self.warmup_steps:
            return peak * (step + 1) / self.warmup_steps
        span = max(1, self.steps - self.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * (step - self.warmup_steps) / span))
        return peak * (self.final_lr_fraction + (1 - self.final_lr_fraction) * cosine)


@dataclass
class PretrainResult:
    steps: int
    wall_time: float  # seconds of training in this process (a resumed build counts its part)
    losses: list[float] = field(default_factory=list)  # mean loss of each block of 100 steps

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan


def batch_tensors(tokenizer, prompts: list[str], solutions: list[str]):
    """Right-padded prompt + solution + eos ids, attention mask, and labels on the solution and
    eos only (-100 elsewhere)."""
    rows, labels = [], []
    for prompt, solution in zip(prompts, solutions, strict=True):
        context = tokenizer(prompt)["input_ids"]
        target = tokenizer(solution, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id]
        rows.append(context + target)
        labels.append([-100] * len(context) + target)
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    label_ids = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        label_ids[i, : len(row)] = torch.tensor(label)
        mask[i, : len(row)] = 1
    return ids, mask, label_ids


def pretrain(model, tokenizer, corpus: list[tuple[str, str]], config: PretrainConfig, *,
             work_dir: str | Path | None = None, on_step=None) -> PretrainResult:
    """Train `model` in place on `corpus` ((prompt, solution) pairs, at least steps x batch).

    work_dir: where resumable states go (None: no checkpoints). on_step(step, loss) is called
    after every step (progress bars).
    """
    need = config.steps * config.batch_size
    if len(corpus) < need:
        raise ValueError(f"corpus has {len(corpus)} solutions, {need} needed")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    start_step, losses = 0, []
    state_dir = Path(work_dir) / CHECKPOINT if work_dir is not None else None
    if state_dir is not None and (state_dir / "state.json").is_file():
        state = read_training_state(state_dir, model, optimizer)
        start_step, losses = state["step"], state["losses"]
    began = time.perf_counter()
    model.train()
    for step in range(start_step, config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate(step, model.config.hidden_size)
        pairs = corpus[step * config.batch_size:(step + 1) * config.batch_size]
        ids, mask, labels = batch_tensors(tokenizer, *zip(*pairs, strict=True))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        done = step + 1
        if on_step is not None:
            on_step(done, losses[-1])
        if state_dir is not None and done % config.checkpoint_every == 0 and done < config.steps:
            write_training_state(state_dir, model, optimizer, {"step": done, "losses": losses})
    model.eval()
    blocks = [sum(losses[i:i + 100]) / len(losses[i:i + 100]) for i in range(0, len(losses), 100)]
    return PretrainResult(config.steps, time.perf_counter() - began, blocks)
