"""Scoring responses under a model: the one place log-probabilities of given tokens are computed.

The rollout engine's sampling log-probs, the trainer's old-policy, reference and policy passes,
the canonical-solution evaluation and pretraining's checks all come down to "log p(these tokens |
this prompt)" under a causal LM at a temperature. `response_logprobs` computes it for all of them
(`sequence_probability` is built on it); its log-softmax is `tempered_log_softmax`, which the
sampler's `_choose` uses too, so a token's log-prob is computed by the same float32 operations
wherever it is needed.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import NamedTuple

import torch


def forward_keywords(model) -> tuple[str, str]:
    """Keyword names for the KV cache and for keeping only the last logits: transformers 5 renamed
    `past_key_values` -> `cache` and 4.4x called `logits_to_keep` `num_logits_to_keep`."""
    params = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in params else "past_key_values"
    keep_kw = "logits_to_keep" if "logits_to_keep" in params else "num_logits_to_keep"
    return cache_kw, keep_kw


def output_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def tempered_log_softmax(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """float32 log-probs [..., V] of the distribution a sampler at `temperature` draws from."""
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def pick(logprobs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """logprobs[..., tokens]: the log-prob of each chosen token ([..., V] x [...] -> [...])."""
    return logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class TokenLogprobs(NamedTuple):
    logp: torch.Tensor  # [B, R'] float32, log p(token) at the temperature; 0 on padding
    entropy: torch.Tensor | None  # [B, R'] float32 entropy of each position's distribution


def logprobs_from_logits(logits: torch.Tensor, targets: torch.Tensor, *,
                         temperature: float = 1.0, with_entropy: bool = False) -> TokenLogprobs:
    """log p(target) per position from [B, T, V] logits (scaled by 1/temperature, as sampling
    was), and optionally the entropy of each position's distribution.

    Written by hand rather than through Categorical: one log_softmax serves both, and the entropy
    is computed without keeping a second [B, T, V] tensor for backward when it is only logged.
    """
    logprobs = tempered_log_softmax(logits, temperature)
    entropy = -(logprobs.exp() * logprobs).sum(-1) if with_entropy else None
    return TokenLogprobs(pick(logprobs, targets), entropy)


def response_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_width: int,
    *,
    temperature: float = 1.0,
    group_size: int | None = None,
    with_entropy: bool = False,
    autocast: torch.dtype | None = None,
) -> TokenLogprobs:
    """Per-token log-probs of the responses input_ids[:, prompt_width:] after their prompts.

    The layout is `Rollouts`': prompts left-padded to `prompt_width`, responses right-padded
    after them, `attention_mask` 1 exactly on real tokens. Padding common to all rows is trimmed
    first, so the result is [B, R'] with R' the longest response among the rows (<= R), float32,
    0 on padding; gradients flow when enabled.

    temperature: score the distribution a sampler at this temperature draws from (logits / T).
    group_size: None runs one teacher-forced pass over the whole sequences. G: the rows are
      groups of G consecutive rows sharing one prompt (as a rollout engine returns n = G samples
      per prompt); each prompt is run once and its KV cache shared by its G responses, so the
      prompt side of the forward (and backward) costs 1/G. The two give the same log-probs up to
      float rounding; each is deterministic.
    with_entropy: also return each position's entropy (else `entropy` is None).
    autocast: run under torch.autocast to this dtype (the trainer's bfloat16 compute over float32
      master weights); None runs in the model's dtype (under any autocast the caller opened).
    """
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    rows = input_ids.shape[0]
    response_width = int(attention_mask[:, prompt_width:].sum(-1).max()) if rows else 0
    if response_width == 0:
        empty = torch.zeros((rows, 0), device=device)
        return TokenLogprobs(empty, empty if with_entropy else None)
    used_prompt = int(attention_mask[:, :prompt_width].sum(-1).max())
    ids = input_ids[:, prompt_width - used_prompt: prompt_width + response_width]
    mask = attention_mask[:, prompt_width - used_prompt: prompt_width + response_width]
    precision = contextlib.nullcontext() if autocast is None else \
        torch.autocast(device_type=device.type, dtype=autocast)
    with precision:
        if group_size is None:
            logits = _teacher_forced_logits(model, ids, mask, response_width)
        else:
            logits = _shared_prompt_logits(model, ids, mask, used_prompt, group_size)
        targets = ids[:, used_prompt:]
        logp, entropy = logprobs_from_logits(logits, targets, temperature=temperature,
                                             with_entropy=with_entropy)
        padding = mask[:, used_prompt:] == 0
        logp = logp.masked_fill(padding, 0.0)
        if entropy is not None:
            entropy = entropy.masked_fill(padding, 0.0)
    return TokenLogprobs(logp, entropy)


def _teacher_forced_logits(model, ids, mask, response_width: int) -> torch.Tensor:
    """Logits predicting each response token: one forward over prompt + response."""
    _, keep_kw = forward_keywords(model)
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=False,
        **{keep_kw: response_width + 1},  # lm_head only where response tokens are predicted
    )
    return out.logits[:, :-1]


def _shared_prompt_logits(model, ids, mask, prompt_width: int, group_size: int) -> torch.Tensor:
    """Logits predicting each response token, each group's prompt run once (module doc)."""
    G = group_size
    if ids.shape[0] % G:
        raise ValueError(f"{ids.shape[0]} rows do not form groups of {G}")
    prompt_ids, prompt_mask = ids[::G, :prompt_width], mask[::G, :prompt_width]
    if not torch.equal(ids[:, :prompt_width], prompt_ids.repeat_interleave(G, dim=0)):
        raise ValueError(f"rows of a group of {G} must share one prompt (prompt-major rows)")
    targets = ids[:, prompt_width:]
    cache_kw, keep_kw = forward_keywords(model)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask,
                position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0), use_cache=True,
                **{keep_kw: 1})
    logits = out.logits[:, -1:].repeat_interleave(G, dim=0)  # predicts response token 1
    if targets.shape[1] > 1:  # response tokens 1..R'-1 predict tokens 2..R'
        cache = output_cache(out)
        cache.batch_repeat_interleave(G)
        full_mask = torch.cat([prompt_mask.repeat_interleave(G, dim=0),
                               mask[:, prompt_width:-1]], dim=1)
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)[:, prompt_width:]
        rest = model(input_ids=targets[:, :-1], attention_mask=full_mask, position_ids=positions,
                     use_cache=True, **{cache_kw: cache}).logits
        logits = torch.cat([logits, rest], dim=1)
    return logits


@torch.no_grad()
def sequence_probability(model, tokenizer, prompts: list[str],
                          responses: list[list[int] | None], *, temperature: float) -> torch.Tensor:
    """Exact probability of each response (token ids) after its prompt under `model` sampled at
    `temperature`: exp of the summed teacher-forced log-probs. 0 where the response is None."""
    out = torch.zeros(len(prompts))
    rows = [i for i, r in enumerate(responses) if r is not None]
    if not rows:
        return out
    encoded = [tokenizer(prompts[i])["input_ids"] for i in rows]
    width_p = max(map(len, encoded))
    width_r = max(len(responses[i]) for i in rows)
    ids = torch.full((len(rows), width_p + width_r), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for j, (i, prompt) in enumerate(zip(rows, encoded, strict=True)):
        response = responses[i]
        ids[j, width_p - len(prompt): width_p] = torch.tensor(prompt)
        ids[j, width_p: width_p + len(response)] = torch.tensor(response)
        mask[j, width_p - len(prompt): width_p + len(response)] = 1
    logp = response_logprobs(model, ids, mask, width_p, temperature=temperature).logp.cpu()
    out[rows] = logp.sum(-1).exp()
    return out
