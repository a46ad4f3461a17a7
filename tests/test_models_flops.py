"""FLOP accounting against the hand count of docs/accounting.md and independent recounts."""

import pytest

from rlscale.models import LADDER, build_model
from rlscale.models.flops import (
    ModelShape,
    forward_flops,
    generation_flops,
    paper_compute,
    sequence_forward_flops,
    step_flops,
)

TINY = ModelShape(n_layers=2, d_model=8, d_attn=8, d_kv=4, d_ff=16, vocab=10)


def test_step_flops_matches_hand_count():
    # docs/accounting.md, worked by hand: one prompt of 3 tokens, two samples of 2 and 1 tokens.
    assert TINY.matmul_params == 2 * (2 * 8 * 8 + 2 * 8 * 4 + 3 * 8 * 16)
    flops = step_flops(TINY, [3, 3], [2, 1], group_size=2)
    assert flops.generation == (3 * 2304 + 64 * 6 + 160) + (2304 + 64 * 4 + 160)
    score = (5 * 2304 + 64 * 15 + 2 * 160) + (4 * 2304 + 64 * 10 + 160)
    assert flops.old_policy == flops.reference == flops.policy_forward == score
    assert flops.policy_backward == 2 * score
    assert flops.total == 124256 == flops.to_dict()["total"]


def test_switches_and_epochs():
    base = step_flops(TINY, [3, 3], [2, 1], group_size=2)
    lean = step_flops(TINY, [3, 3], [2, 1], group_size=2, old_policy_pass=False,
                      reference_pass=False, update_epochs=2)
    assert lean.old_policy == lean.reference == 0
    assert lean.policy_forward == 2 * base.policy_forward
    # Unshared prompts: each sequence prefills its own prompt.
    unshared = step_flops(TINY, [3, 3], [2, 1], group_size=1)
    assert unshared.generation == generation_flops(TINY, 3, 2) + generation_flops(TINY, 3, 1)
    assert unshared.generation > base.generation


def test_attention_sums_over_a_growing_context():
    # Token by token with a cache equals one pass over the sequence (logits everywhere).
    stepwise = sum(forward_flops(TINY, 1, past=i) for i in range(7))
    assert stepwise == sequence_forward_flops(TINY, 7)
    no_attention = 7 * (2 * TINY.matmul_params + 2 * TINY.d_model * TINY.vocab)
    assert sequence_forward_flops(TINY, 7) - no_attention == 4 * 2 * 8 * (7 * 8 // 2)


def test_shape_from_ladder_model_and_bad_input():
    spec = next(iter(LADDER.values()))
    shape = ModelShape.from_model(build_model(spec, seed=0))
    assert shape.d_attn == spec.n_heads * spec.head_dim and shape.d_kv == spec.head_dim
    # matmul weights are the non-embedding parameters minus norms and q/k/v biases.
    biases_and_norms = spec.n_layers * (shape.d_attn + 2 * shape.d_kv + 2 * spec.hidden_size)
    assert shape.matmul_params == spec.non_embedding_params - biases_and_norms - spec.hidden_size
    with pytest.raises(ValueError, match="share a prompt"):
        step_flops(TINY, [3, 4], [1, 1], group_size=2)
    with pytest.raises(ValueError, match="does not divide"):
        step_flops(TINY, [3, 3, 3], [1, 1, 1], group_size=2)


def test_paper_compute():
    assert paper_compute(1000, 9) == 54000
