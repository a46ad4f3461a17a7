"""HFRolloutEngine: shapes, EOS stopping, seeded determinism, sampling log-probs."""

import pytest
import torch

from rlscale.models import LADDER, build_model, build_tokenizer
from rlscale.models.scoring import response_logprobs
from rlscale.rl.rollout import HFRolloutEngine, RolloutEngine, render_prompt

PROMPTS = ["1+2=", "37+48-12=", "7"]


@pytest.fixture(scope="module")
def engine():
    tokenizer = build_tokenizer()
    model = build_model(next(iter(LADDER)), seed=0, tokenizer=tokenizer).eval()
    return HFRolloutEngine(model, tokenizer)


def test_shapes_and_layout(engine):
    r = engine.generate(PROMPTS, n=3, temperature=1.0, max_new_tokens=12, seed=0)
    assert isinstance(engine, RolloutEngine)
    rows = len(PROMPTS) * 3
    assert len(r) == rows and r.prompt_index == [i // 3 for i in range(rows)]
    width = r.prompt_width + max(r.response_lens)
    assert r.input_ids.shape == r.attention_mask.shape == (rows, width)
    assert r.response_mask.shape == r.sampling_logprobs.shape == (rows, max(r.response_lens))
    assert r.sampling_logprobs.dtype == torch.float32
    for i in range(rows):
        prompt = engine.tokenizer(PROMPTS[r.prompt_index[i]])["input_ids"]
        assert r.prompt_token_ids(i) == prompt and r.prompt_lens[i] == len(prompt)
        assert 1 <= r.response_lens[i] <= 12
        assert r.response_mask[i].sum() == r.response_lens[i]
        assert r.attention_mask[i].sum() == r.prompt_lens[i] + r.response_lens[i]
        assert (r.sampling_logprobs[i, : r.response_lens[i]] < 0).all()
        assert (r.sampling_logprobs[i, r.response_lens[i] :] == 0).all()
        response = r.response_token_ids(i)
        assert r.texts[i] == engine.tokenizer.decode(response, skip_special_tokens=True)
        eos = engine.tokenizer.eos_token_id
        # Stops at the first EOS, and only there or at the cap.
        assert eos not in response[:-1]
        assert r.finished[i] == (response[-1] == eos)
        assert r.finished[i] or r.response_lens[i] == 12


def test_stops_at_eos(engine):
    # A model biased to emit EOS right away stops every sequence after one token.
    model = build_model(next(iter(LADDER)), seed=0, tokenizer=engine.tokenizer).eval()
    with torch.no_grad():
        model.model.norm.weight.zero_()
        model.lm_head.weight.zero_()  # tied: embeddings too; all logits become 0 ...
        model.model.embed_tokens.weight[engine.tokenizer.eos_token_id] = 0.0
    eos_bias = torch.zeros(len(engine.tokenizer))
    eos_bias[engine.tokenizer.eos_token_id] = 50.0
    hook = model.lm_head.register_forward_hook(lambda m, i, out: out + eos_bias)  # ... but EOS
    r = HFRolloutEngine(model, engine.tokenizer).generate(PROMPTS, n=2, max_new_tokens=10)
    hook.remove()
    assert r.response_lens == [1] * 6 and all(r.finished) and r.texts == [""] * 6


def test_deterministic_by_seed(engine):
    a = engine.generate(PROMPTS, n=4, temperature=0.9, top_p=0.9, max_new_tokens=10, seed=7)
    b = engine.generate(PROMPTS, n=4, temperature=0.9, top_p=0.9, max_new_tokens=10, seed=7)
    c = engine.generate(PROMPTS, n=4, temperature=0.9, top_p=0.9, max_new_tokens=10, seed=8)
    assert torch.equal(a.input_ids, b.input_ids)
    assert torch.equal(a.sampling_logprobs, b.sampling_logprobs)
    assert not torch.equal(a.input_ids, c.input_ids)
    # Chunking by batch_size keeps every prompt's samples together and stays seeded.
    chunked = HFRolloutEngine(engine.model, engine.tokenizer, batch_size=4)
    d = chunked.generate(PROMPTS, n=4, temperature=0.9, top_p=0.9, max_new_tokens=10, seed=7)
    e = chunked.generate(PROMPTS, n=4, temperature=0.9, top_p=0.9, max_new_tokens=10, seed=7)
    assert torch.equal(d.input_ids, e.input_ids) and len(d) == len(a)


def test_sampling_logprobs_match_recomputed_forward(engine):
    r = engine.generate(PROMPTS, n=4, temperature=1.0, max_new_tokens=16, seed=3)
    with torch.no_grad():
        recomputed = response_logprobs(engine.model, r.input_ids, r.attention_mask,
                                       r.prompt_width).logp
    diff = (recomputed - r.sampling_logprobs) * r.response_mask
    assert diff.abs().max() < 1e-4
    # At another temperature they match the tempered distribution.
    r = engine.generate(PROMPTS, n=2, temperature=0.5, max_new_tokens=8, seed=3)
    with torch.no_grad():
        tempered = response_logprobs(engine.model, r.input_ids, r.attention_mask, r.prompt_width,
                                     temperature=0.5).logp
    assert ((tempered - r.sampling_logprobs) * r.response_mask).abs().max() < 1e-4


def test_top_p_and_greedy(engine):
    # A tiny nucleus keeps only the most likely token: sampling equals greedy decoding.
    nucleus = engine.generate(PROMPTS, n=2, top_p=1e-6, max_new_tokens=8, seed=1)
    greedy = engine.generate(PROMPTS, n=2, greedy=True, max_new_tokens=8, seed=2)
    assert torch.equal(nucleus.input_ids, greedy.input_ids)
    assert (nucleus.sampling_logprobs == 0).all()  # the kept token has probability 1
    with torch.no_grad():
        plain = response_logprobs(engine.model, greedy.input_ids, greedy.attention_mask,
                                  greedy.prompt_width).logp
    assert ((plain - greedy.sampling_logprobs) * greedy.response_mask).abs().max() < 1e-4
    with pytest.raises(ValueError, match="temperature"):
        engine.generate(PROMPTS, temperature=0.0)


def test_render_prompt_plain_and_chat():
    from rlscale.data import Problem

    tokenizer = build_tokenizer()
    assert render_prompt(Problem("a", "1+2=", "3"), tokenizer) == "1+2="
    chat = Problem("b", [{"role": "user", "content": "1+2="}], "3")
    assert render_prompt(chat, tokenizer) == "1+2="  # no chat template: the joined contents
    tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}>"
    assert render_prompt(chat, tokenizer) == "<user>1+2=>"
