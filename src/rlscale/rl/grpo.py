"""The GRPO objective, top to bottom: advantages, clipped ratio loss, k3 KL, aggregation.

Shapes: a batch holds B sequences (prompts x G rollouts, grouped consecutively: the G rollouts of
prompt 0 first). Per-token tensors are [B, T] over the *response* tokens, with `mask` 1 on real
response tokens and 0 on padding. Formulas follow VeRL 0.3.1, the trainer the paper used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def group_advantages(rewards: Tensor, group_size: int, *, std_normalize: bool = True,
                     eps: float = 1e-6) -> Tensor:
    """A_i = (r_i - mean(r_group)) / (std(r_group) + eps), one scalar per sequence.

    `rewards` is [B] with B = prompts * group_size. std is the unbiased (n-1) std, as VeRL and TRL
    compute it; a group whose rollouts all scored the same gets advantage 0 (no signal).
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    groups = rewards.float().view(-1, group_size)
    centred = groups - groups.mean(dim=1, keepdim=True)
    if std_normalize:
        centred = centred / (groups.std(dim=1, keepdim=True) + eps)
    return centred.view(-1)


def low_var_kl(logp: Tensor, ref_logp: Tensor, clamp: float = 10.0) -> Tensor:
    """k3 estimator of KL(policy || reference) per token (Schulman's "approximating KL").

    With d = ref_logp - logp: kl = exp(d) - d - 1 >= 0, unbiased for the KL under samples from the
    policy, low variance; clamped to +-clamp as VeRL's "low_var_kl" does.
    """
    d = (ref_logp - logp).clamp(-20.0, 20.0)  # keeps exp() finite; VeRL does the same
    return (torch.exp(d) - d - 1.0).clamp(-clamp, clamp)


def clipped_policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, clip_low: float,
                        clip_high: float) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's clipped surrogate per token: max(-A r, -A clip(r, 1-low, 1+high)).

    Returns (per-token loss, ratio, clipped) where `clipped` marks tokens whose clipped term won
    (those carry no gradient). `advantages` is per sequence [B] and broadcast over tokens.
    """
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    return torch.maximum(unclipped, clipped), ratio, clipped > unclipped


def aggregate(per_token: Tensor, mask: Tensor, mode: str, *, total_tokens: float | None = None,
              total_seqs: float | None = None) -> Tensor:
    """Reduce [B, T] per-token values to the loss.

    token-mean: sum over all tokens / number of tokens (long answers weigh more, as in the paper).
    seq-mean: mean over sequences of each sequence's token mean.
    `total_tokens` / `total_seqs` let a micro-batch divide by the whole mini-batch's count, so
    gradient accumulation over micro-batches gives exactly the mini-batch's loss gradient.
    """
    mask = mask.to(per_token.dtype)
    if mode == "token-mean":
        denom = total_tokens if total_tokens is not None else mask.sum().clamp(min=1.0)
        return (per_token * mask).sum() / denom
    if mode == "seq-mean":
        seq_means = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        denom = total_seqs if total_seqs is not None else per_token.shape[0]
        return seq_means.sum() / denom
    raise ValueError(f"loss_agg must be 'token-mean' or 'seq-mean', not {mode!r}")


@dataclass
class LossStats:
    """Token-means of the loss parts over a (micro-)batch, for the step record."""

    policy_loss: float
    kl: float
    entropy: float
    clip_frac: float
    ratio_mean: float
    ratio_max: float
    ratio_min: float
    tokens: int


def grpo_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, *,
              ref_logp: Tensor | None = None, entropy: Tensor | None = None,
              clip_low: float = 0.2, clip_high: float = 0.2, kl_coef: float = 0.001,
              kl_clamp: float = 10.0, entropy_coef: float = 0.0, loss_agg: str = "token-mean",
              total_tokens: float | None = None,
              total_seqs: float | None = None) -> tuple[Tensor, LossStats]:
    """The GRPO loss: clipped policy term + kl_coef * k3 KL - entropy_coef * entropy.

    Every term is aggregated the same way (VeRL). `ref_logp` may be None when kl_coef is 0;
    `entropy` (per token) may be None when entropy_coef is 0 and it is not logged.
    """
    policy, ratio, clipped = clipped_policy_loss(logp, old_logp, advantages, clip_low, clip_high)

    def agg(x: Tensor) -> Tensor:
        return aggregate(x, mask, loss_agg, total_tokens=total_tokens, total_seqs=total_seqs)

    loss = agg(policy)
    kl = low_var_kl(logp, ref_logp, kl_clamp) if ref_logp is not None else None
    if kl is not None and kl_coef:
        loss = loss + kl_coef * agg(kl)
    if entropy is not None and entropy_coef:
        loss = loss - entropy_coef * agg(entropy)

    with torch.no_grad():
        m = mask.bool()
        n = int(m.sum())

        def mean(x: Tensor | None) -> float:
            return float(x[m].float().mean()) if x is not None and n else 0.0

        live = ratio[m]
        stats = LossStats(
            policy_loss=mean(policy), kl=mean(kl), entropy=mean(entropy),
            clip_frac=mean(clipped), ratio_mean=mean(ratio),
            ratio_max=float(live.max()) if n else 1.0, ratio_min=float(live.min()) if n else 1.0,
            tokens=n)
    return loss, stats
