"""Rollouts: batched sampling with a KV cache, keeping the sampling log-probs of the chosen tokens.

`RolloutEngine` is the seam: the trainer and `evaluate` only call `generate` and `sync_weights`
(the contract is in its docstring), so a vLLM engine (GPU machines) can replace `HFRolloutEngine`
by returning the same `Rollouts` and loading the policy's weights in `sync_weights`, which the
trainer calls after each step's optimizer updates. Such an engine maps `generate`'s arguments onto
`SamplingParams(n=n, temperature=..., top_p=..., max_tokens=max_new_tokens, seed=seed,
logprobs=0)` (greedy: temperature 0) and, if it reports log-probs, must report those of the
distribution it sampled from (the processed, temperature-scaled one), as this engine does.

Why a hand-written decode loop instead of `model.generate`: on the miniature models every forward
costs well under a millisecond of math, so Python overhead dominates. The loop below prefills each
prompt once and shares its KV cache among its n samples (`batch_repeat_interleave`), drops
finished rows from the batch, computes the lm_head only for the last position, and returns the
sampling log-probs directly (generate would need `output_scores` and a re-normalisation).
Measured on this 2-core CPU, one torch thread, a 690K-parameter model of the 0.1 ladder, 32 prompts x 8 samples,
T=1, up to 48 new tokens (~5000 sampled): this loop 0.38 s, `model.generate` (with
output_scores) 0.91 s, i.e. 2.4x faster.
"""

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from rlscale.data.problem import Problem
from rlscale.models.scoring import (
    forward_keywords,
    output_cache,
    pick,
    tempered_log_softmax,
)


def render_prompt(problem: Problem, tokenizer) -> str:
    """The text a model sees: the chat template for chat prompts when the tokenizer has one."""
    if isinstance(problem.prompt, list) and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            problem.prompt, tokenize=False, add_generation_prompt=True
        )
    return problem.prompt_text()


@dataclass
class Rollouts:
    """B = len(prompts) * n sequences, prompt-major (prompt i's samples are rows i*n .. i*n+n-1).

    `input_ids` is [B, P + R]: each prompt left-padded to width P, then its response right-padded
    to width R, so one forward over `input_ids` scores every response token.
    `sampling_logprobs` is None when the engine does not report them: the trainer then computes
    the old policy's log-probs itself (as `recompute_old_logprobs=True` does).
    """

    input_ids: torch.Tensor  # [B, P+R] long
    attention_mask: torch.Tensor  # [B, P+R] long, 1 on real tokens
    response_mask: torch.Tensor  # [B, R] float32, 1 on real response tokens (EOS included)
    prompt_index: list[int]
    prompt_lens: list[int]
    response_lens: list[int]
    finished: list[bool]  # ended with a stop token (else hit max_new_tokens)
    texts: list[str]  # decoded responses, special tokens skipped
    prompt_width: int  # P
    sampling_logprobs: torch.Tensor | None = None  # [B, R] float32, 0 where masked

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def response_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_width :]

    def position_ids(self) -> torch.Tensor:
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)

    def prompt_token_ids(self, i: int) -> list[int]:
        return self.input_ids[i, self.prompt_width - self.prompt_lens[i] : self.prompt_width].tolist()

    def response_token_ids(self, i: int) -> list[int]:
        return self.response_ids[i, : self.response_lens[i]].tolist()


@runtime_checkable
class RolloutEngine(Protocol):
    """What the trainer and evaluation need from a sampler (HF here; vLLM can implement it).

    The trainer calls, every step: `generate(prompts, n=G, ...)` under torch.no_grad() (and its
    autocast), scores the result, runs its optimizer updates, then `sync_weights(policy)` once,
    before the next step's `generate` (and before the evaluation that may follow the step); and
    once after a resumed run loads its checkpoint. An engine must not sample from stale weights
    after `sync_weights` returns.

    `generate` must return `Rollouts` with, for B = len(prompts) * n rows in prompt-major order:
    - `input_ids` [B, P+R] long, prompts (as the engine tokenized them, special tokens included)
      left-padded to P, responses (the sampled token ids, the stop token included when it
      stopped) right-padded to R = the longest response; `attention_mask` [B, P+R] 1 exactly on
      real tokens; `prompt_width` = P; `response_mask` [B, R] float32, 1 on real response tokens;
      all on the CPU. The trainer scores with `rlscale.models.scoring.response_logprobs` over
      these, sharing each group's prompt pass, so rows i*n .. i*n+n-1 must carry one prompt.
    - `prompt_index` (row -> index into `prompts`, i.e. row // n), `prompt_lens`, `response_lens`
      (real token counts: the FLOP and token accounting), `finished` (stopped on a stop token),
      `texts` (the decoded responses, special tokens skipped: what the reward verifies).
    - optionally `sampling_logprobs` [B, R] float32: the log-prob of each chosen token under the
      distribution actually sampled from (temperature and top-p applied; greedy: T = 1), 0 on
      padding. The trainer uses them as the ratio's old log-probs unless
      `recompute_old_logprobs` is set; None makes it recompute them.
    For a resumed run to repeat the uninterrupted one, samples should depend only on (weights,
    arguments, seed).
    """

    def generate(
        self,
        prompts: list[str],
        *,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        greedy: bool = False,
        seed: int = 0,
    ) -> Rollouts: ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Sample from `model`'s current weights from now on (a vLLM engine loads its state dict;
        the HF engine shares the module, so nothing is copied)."""
        ...


def _stop_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return sorted(i for i in ids if i is not None)


def _choose(logits, *, temperature, top_p, greedy, generator):
    """Next tokens and their log-probs under the distribution actually sampled from."""
    if greedy:
        tokens = logits.argmax(-1)
        return tokens, pick(tempered_log_softmax(logits), tokens)
    logprobs = tempered_log_softmax(logits, temperature)
    if top_p < 1.0:
        # Nucleus: keep the smallest prefix of tokens (by probability) whose mass reaches top_p.
        sorted_lp, order = logprobs.sort(dim=-1, descending=True)
        mass_before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()
        drop_sorted = mass_before >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logprobs = torch.log_softmax(logprobs.masked_fill(drop, float("-inf")), dim=-1)
    # Inverse-CDF sampling: one uniform per row against the cumulative probabilities (exact, and
    # 7x faster than torch.multinomial on these small vocabularies). u is scaled by the row's
    # total so float rounding of the sum can never select past the last token.
    cdf = logprobs.exp().cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    tokens = (cdf <= u).sum(-1)  # a zero-probability token (flat cdf) can never be chosen
    return tokens, pick(logprobs, tokens)


class HFRolloutEngine:
    """Sampling from a transformers causal LM with a hand-written KV-cache decode loop.

    batch_size caps the sequences decoded together (prompts are chunked, each prompt's n
    samples stay in one chunk); None decodes everything at once. The samples depend on the seed
    and on batch_size (chunks draw from one generator in turn).
    """

    def __init__(self, model, tokenizer, *, batch_size: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    def sync_weights(self, model) -> None:
        self.model = model  # shares the module: updates are visible immediately

    @torch.no_grad()
    def generate(
        self,
        prompts: list[str],
        *,
        n: int = 1,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 256,
        greedy: bool = False,
        seed: int = 0,
    ) -> Rollouts:
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"n and max_new_tokens must be >= 1 (got n={n}, {max_new_tokens=})")
        if not greedy and not (temperature > 0 and 0 < top_p <= 1):
            raise ValueError(f"need temperature > 0 and 0 < top_p <= 1 ({temperature=}, {top_p=})")
        generator = torch.Generator(device=self._device).manual_seed(seed)
        encoded = [self.tokenizer(p)["input_ids"] for p in prompts]
        per_chunk = len(encoded) if self.batch_size is None else max(1, self.batch_size // n)
        chunks = [self._decode(encoded[start : start + per_chunk], n, temperature, top_p,
                               max_new_tokens, greedy, generator)
                  for start in range(0, len(encoded), per_chunk)]
        return self._assemble(encoded, chunks, n)

    @property
    def _device(self):
        return next(self.model.parameters()).device

    def _decode(self, prompts, n, temperature, top_p, max_new_tokens, greedy, generator):
        model, device = self.model, self._device
        cache_kw, keep_kw = forward_keywords(model)
        stop = torch.tensor(_stop_ids(model, self.tokenizer), device=device)
        pad_id = self.tokenizer.pad_token_id
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        # Prefill each prompt once, then share its cache among its n samples.
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True,
            **{keep_kw: 1},
        )
        cache = output_cache(out)
        logits = out.logits[:, -1].float()
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            mask = mask.repeat_interleave(n, dim=0)
        rows = mask.shape[0]
        next_pos = mask.sum(-1)
        active = torch.arange(rows, device=device)  # batch row -> sequence index
        tokens = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
        token_lps = torch.zeros((rows, max_new_tokens), dtype=torch.float32, device=device)
        lengths = torch.zeros(rows, dtype=torch.long, device=device)
        done = torch.zeros(rows, dtype=torch.bool, device=device)
        for t in range(max_new_tokens):
            chosen, chosen_lp = _choose(
                logits, temperature=temperature, top_p=top_p, greedy=greedy, generator=generator
            )
            tokens[active, t] = chosen
            token_lps[active, t] = chosen_lp
            lengths[active] = t + 1
            stopped = torch.isin(chosen, stop)
            done[active[stopped]] = True
            if t == max_new_tokens - 1 or bool(stopped.all()):
                break
            if bool(stopped.any()):  # drop finished rows so later steps decode fewer sequences
                keep = (~stopped).nonzero().squeeze(-1)
                cache.batch_select_indices(keep)
                active, chosen, mask, next_pos = active[keep], chosen[keep], mask[keep], next_pos[keep]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
            out = model(
                input_ids=chosen[:, None],
                attention_mask=mask,
                position_ids=next_pos[:, None],
                use_cache=True,
                **{cache_kw: cache},
            )
            cache = output_cache(out)
            logits = out.logits[:, -1].float()
            next_pos = next_pos + 1
        return tokens.cpu(), token_lps.cpu(), lengths.cpu(), done.cpu()

    def _assemble(self, prompts: list[list[int]], chunks, n: int) -> Rollouts:
        """One Rollouts from the chunks' (tokens, log-probs, lengths, done), built with tensor ops
        (a Python loop per row costs more than the decoding itself on the smallest models)."""
        pad_id = self.tokenizer.pad_token_id
        lengths = torch.cat([c[2] for c in chunks])
        rows, r_width = len(lengths), int(lengths.max())
        responses = torch.full((rows, r_width), pad_id, dtype=torch.long)
        sampling_logprobs = torch.zeros((rows, r_width), dtype=torch.float32)
        offset = 0
        for tokens, token_lps, _, _ in chunks:
            width = min(r_width, tokens.shape[1])
            responses[offset : offset + len(tokens), :width] = tokens[:, :width]
            sampling_logprobs[offset : offset + len(tokens), :width] = token_lps[:, :width]
            offset += len(tokens)
        response_mask = (torch.arange(r_width)[None, :] < lengths[:, None]).float()
        responses = responses.masked_fill(response_mask == 0, pad_id)
        sampling_logprobs = sampling_logprobs * response_mask
        p_width = max(map(len, prompts))
        prompt_block = torch.full((len(prompts), p_width), pad_id, dtype=torch.long)
        prompt_mask = torch.zeros((len(prompts), p_width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            prompt_block[i, p_width - len(ids):] = torch.tensor(ids)
            prompt_mask[i, p_width - len(ids):] = 1
        input_ids = torch.cat([prompt_block.repeat_interleave(n, dim=0), responses], dim=1)
        attention_mask = torch.cat([prompt_mask.repeat_interleave(n, dim=0),
                                    response_mask.long()], dim=1)
        lengths_list = lengths.tolist()
        texts = self.tokenizer.batch_decode(
            [responses[i, : lengths_list[i]].tolist() for i in range(rows)],
            skip_special_tokens=True)
        return Rollouts(
            input_ids=input_ids,
            attention_mask=attention_mask,
            response_mask=response_mask,
            sampling_logprobs=sampling_logprobs,
            prompt_index=[i // n for i in range(rows)],
            prompt_lens=[len(p) for p in prompts for _ in range(n)],
            response_lens=lengths_list,
            finished=torch.cat([c[3] for c in chunks]).tolist(),
            texts=texts,
            prompt_width=p_width,
        )
