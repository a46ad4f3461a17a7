"""The miniature model ladder: six Qwen2-architecture models, 42K to 1.4M non-embedding params.

Shapes follow the Qwen2.5 family's recipe scaled down: depth and width grow together (2 -> 8
layers, 32 -> 96 hidden; depth matters at equal budget, docs/miniature.md), head_dim fixed (32 here, 64-128 in Qwen2.5), MLP intermediate ~5.3x
hidden (Qwen2.5: 5.3-5.8x), grouped-query attention with a single KV head (Qwen2.5 shares one KV
head among 6-8 query heads; these models have at most 4 heads), tied embeddings as in the small
Qwen2.5 models, RMSNorm eps 1e-6, rope theta 1e4 (sequences are short).
"""

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase, Qwen2Config, Qwen2ForCausalLM

from rlscale.errors import ConfigError
from rlscale.models.tokenizer import build_tokenizer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    hidden_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    intermediate_size: int
    head_dim: int = 32

    @property
    def non_embedding_params(self) -> int:
        """Exact count of a built model's non-embedding parameters (matmuls, biases, norms)."""
        d, a, kv = self.hidden_size, self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        attention = d * a + a + 2 * (d * kv + kv) + a * d  # q (+bias), k/v (+bias), o (no bias)
        mlp = 3 * d * self.intermediate_size
        norms = 2 * d
        return self.n_layers * (attention + mlp + norms) + d  # + final norm

    def config(self, tokenizer: PreTrainedTokenizerBase | None = None) -> Qwen2Config:
        tokenizer = tokenizer or build_tokenizer()
        return Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            max_position_embeddings=1024,
            rope_theta=10000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )


def _spec(hidden: int, layers: int) -> ModelSpec:
    heads = hidden // 32
    # ~16/3 x hidden rounded to a multiple of 16, as Qwen2.5 rounds its intermediate sizes.
    intermediate = round(hidden * 16 / 3 / 16) * 16
    probe = ModelSpec("", hidden, layers, heads, 1, intermediate)
    n = probe.non_embedding_params
    label = f"{n / 1e6:.1f}m" if n >= 1e6 else f"{round(n / 1e3)}k"
    return ModelSpec(f"mini-{label}", hidden, layers, heads, 1, intermediate)


LADDER: dict[str, ModelSpec] = {
    s.name: s
    # 80 x 4 and 128 x 6 were built too and pretrained below smaller members (docs/miniature.md).
    for s in (_spec(32, 2), _spec(48, 2), _spec(48, 3), _spec(64, 4), _spec(96, 5), _spec(96, 8))
}


def ladder_names() -> list[str]:
    return list(LADDER)


def get_spec(name_or_spec: str | ModelSpec) -> ModelSpec:
    if isinstance(name_or_spec, ModelSpec):
        return name_or_spec
    if name_or_spec not in LADDER:
        raise ConfigError(f"unknown ladder size {name_or_spec!r}; known: {', '.join(LADDER)}")
    return LADDER[name_or_spec]


def build_model(
    name_or_spec: str | ModelSpec, *, seed: int, tokenizer: PreTrainedTokenizerBase | None = None
) -> Qwen2ForCausalLM:
    """A freshly initialised float32 ladder model; the same seed gives the same weights."""
    spec = get_spec(name_or_spec)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(spec.config(tokenizer))
    return model.float()
