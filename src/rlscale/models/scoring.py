"""Scoring responses under a model: the one place log-probabilities of given tokens are computed.

The rollout engine's sampling log-probs, the trainer's old-policy and reference passes, the
canonical-solution evaluation and pretraining's checks all come down to "log p(these tokens |
this prompt)" under a causal LM at a temperature; these helpers compute it the same way for all.
"""

import inspect

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


def token_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_width: int,
    *,
    temperature: float = 1.0,
) -> torch.Tensor:
    """float32 log-probs [B, R] of the response tokens input_ids[:, prompt_width:] under `model`
    at `temperature` (grad flows when enabled). Old-policy, reference and policy passes use it."""
    _, keep_kw = forward_keywords(model)
    response_width = input_ids.shape[1] - prompt_width
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=False,
        **{keep_kw: response_width + 1},  # lm_head only where response tokens are predicted
    )
    logits = out.logits[:, :-1].float() / temperature
    targets = input_ids[:, prompt_width:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def sequence_probability(model, tokenizer, prompts: list[str],
                          responses: list[list[int] | None], *, temperature: float) -> torch.Tensor:
    """Exact probability of each response (token ids) after its prompt under `model` sampled at
    `temperature`: exp of the summed teacher-forced log-probs. 0 where the response is None."""
    out = torch.zeros(len(prompts))
    rows = [i for i, r in enumerate(responses) if r is not None]
    if not rows:
        return out
    device = next(model.parameters()).device
    encoded = [tokenizer(prompts[i])["input_ids"] for i in rows]
    width_p = max(map(len, encoded))
    width_r = max(len(responses[i]) for i in rows)
    ids = torch.full((len(rows), width_p + width_r), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    response_mask = torch.zeros((len(rows), width_r))
    for j, (i, prompt) in enumerate(zip(rows, encoded, strict=True)):
        response = responses[i]
        ids[j, width_p - len(prompt): width_p] = torch.tensor(prompt)
        ids[j, width_p: width_p + len(response)] = torch.tensor(response)
        mask[j, width_p - len(prompt): width_p + len(response)] = 1
        response_mask[j, : len(response)] = 1.0
    logp = token_logprobs(model, ids.to(device), mask.to(device), width_p,
                          temperature=temperature).cpu()
    out[rows] = (logp * response_mask).sum(-1).exp()
    return out
