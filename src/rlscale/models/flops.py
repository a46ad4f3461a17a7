"""FLOP accounting of a GRPO step: the real cost (attention, generation, extra passes included)
beside the paper's C = 6 N T. Formulas and a hand-worked example: docs/accounting.md.

Conventions: a multiply-add is 2 FLOPs; only matmuls count (norms, biases, softmax, rotary
embeddings are < 1% here); lengths are each sequence's real tokens (padding is not counted, so the
figures are what an ideal engine must compute, independent of batching).
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from rlscale.units import training_flops


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that set a decoder's FLOPs."""

    n_layers: int
    d_model: int
    d_attn: int  # n_heads * head_dim (query / output width)
    d_kv: int  # n_kv_heads * head_dim (key / value width; grouped-query attention)
    d_ff: int  # MLP intermediate size (gated: gate, up and down projections)
    vocab: int

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        return cls(
            n_layers=config.num_hidden_layers,
            d_model=config.hidden_size,
            d_attn=config.num_attention_heads * head_dim,
            d_kv=n_kv * head_dim,
            d_ff=config.intermediate_size,
            vocab=config.vocab_size,
        )

    @classmethod
    def from_model(cls, model) -> "ModelShape":
        return cls.from_config(model.config)

    @property
    def matmul_params(self) -> int:
        """Weights of the decoder layers' matmuls: q, o (d x d_attn), k, v (d x d_kv), MLP (3 d d_ff)."""
        d = self.d_model
        return self.n_layers * (2 * d * self.d_attn + 2 * d * self.d_kv + 3 * d * self.d_ff)


def forward_flops(
    shape: ModelShape, n_tokens: int, *, past: int = 0, lm_head_tokens: int | None = None
) -> int:
    """One forward of `n_tokens` tokens that follow `past` cached tokens.

    Per token: 2 * matmul_params; attention of the token at (1-based) position i over its i keys:
    2 * i * d_attn for QK^T and 2 * i * d_attn for AV, in every layer; lm_head 2 * d * vocab for
    each of the `lm_head_tokens` positions whose logits are computed (default: all n_tokens).
    """
    if lm_head_tokens is None:
        lm_head_tokens = n_tokens
    keys_attended = n_tokens * past + n_tokens * (n_tokens + 1) // 2  # sum of i for i in past+1..past+n
    return (
        2 * shape.matmul_params * n_tokens
        + 4 * shape.n_layers * shape.d_attn * keys_attended
        + 2 * shape.d_model * shape.vocab * lm_head_tokens
    )


def sequence_forward_flops(shape: ModelShape, seq_len: int) -> int:
    """A full causal forward of a sequence, logits at every position."""
    return forward_flops(shape, seq_len)


def scoring_flops(shape: ModelShape, prompt_len: int, response_len: int) -> int:
    """A log-prob pass over prompt + response: logits only where response tokens are predicted."""
    return forward_flops(shape, prompt_len + response_len, lm_head_tokens=response_len)


def prefill_flops(shape: ModelShape, prompt_len: int) -> int:
    """Reading a prompt into the KV cache; logits only at its last position (the first sample)."""
    return forward_flops(shape, prompt_len, lm_head_tokens=1)


def decode_flops(shape: ModelShape, prompt_len: int, response_len: int) -> int:
    """Sampling tokens 2..r of a response one at a time with a KV cache: each step feeds the
    previous token, attends over the growing context and computes one row of logits."""
    return forward_flops(shape, response_len - 1, past=prompt_len)


def generation_flops(shape: ModelShape, prompt_len: int, response_len: int) -> int:
    """One response sampled on its own: prefill + decode."""
    return prefill_flops(shape, prompt_len) + decode_flops(shape, prompt_len, response_len)


@dataclass(frozen=True)
class StepFlops:
    generation: int
    old_policy: int
    reference: int
    policy_forward: int
    policy_backward: int

    @property
    def total(self) -> int:
        return (
            self.generation + self.old_policy + self.reference
            + self.policy_forward + self.policy_backward
        )

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def step_flops(
    shape: ModelShape,
    prompt_lens: Sequence[int],
    response_lens: Sequence[int],
    *,
    group_size: int = 1,
    update_epochs: int = 1,
    old_policy_pass: bool = True,
    reference_pass: bool = True,
) -> StepFlops:
    """FLOPs of one GRPO step over a batch of sequences (one entry per sequence, prompt-major).

    group_size: rows i*g .. i*g+g-1 share one prompt, prefilled once (as HFRolloutEngine does);
    update_epochs: passes of the policy over the batch (its mini-batches partition the batch);
    old_policy_pass: False when the sampling log-probs serve as the old policy's (on-policy);
    reference_pass: False without a KL term. Backward = 2 x forward.
    """
    if len(prompt_lens) != len(response_lens):
        raise ValueError(f"{len(prompt_lens)} prompt lengths but {len(response_lens)} responses")
    if group_size < 1 or len(prompt_lens) % group_size:
        raise ValueError(f"group_size {group_size} does not divide {len(prompt_lens)} sequences")
    generation = 0
    for start in range(0, len(prompt_lens), group_size):
        group = prompt_lens[start : start + group_size]
        if len(set(group)) != 1:
            raise ValueError(f"sequences {start}..{start + group_size - 1} share a prompt but "
                             f"have prompt lengths {list(group)}")
        generation += prefill_flops(shape, group[0])
    generation += sum(decode_flops(shape, p, r) for p, r in zip(prompt_lens, response_lens, strict=True))
    scoring = sum(scoring_flops(shape, p, r) for p, r in zip(prompt_lens, response_lens, strict=True))
    policy_forward = update_epochs * scoring
    return StepFlops(
        generation=generation,
        old_policy=scoring if old_policy_pass else 0,
        reference=scoring if reference_pass else 0,
        policy_forward=policy_forward,
        policy_backward=2 * policy_forward,
    )


def paper_compute(n_params: float, tokens: float) -> float:
    """The paper's compute: C = 6 N T (N parameters, T prompt + response tokens); the one
    definition is `rlscale.units.training_flops` (the laws use it and cannot import models)."""
    return training_flops(n_params, tokens)
