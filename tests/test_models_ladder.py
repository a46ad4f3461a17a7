"""The miniature ladder, its tokenizer, parameter counts and the safetensors round trip."""

import torch

from rlscale.models import (
    LADDER,
    build_model,
    build_tokenizer,
    count_params,
    load_model,
    save_model,
)


def test_tokenizer_round_trip_and_specials():
    tokenizer = build_tokenizer()
    text = "37+48-12=37+48=85,85-12=73,\\boxed{73}\n Hello, World! ~{}[]"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert len(ids) == len(text) + 1  # one token per character
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert len({tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}) == 3
    assert tokenizer.padding_side == "left"


def test_ladder_counts_monotone_and_span():
    sizes = list(LADDER.values())
    assert len(sizes) >= 5
    counts = [count_params(build_model(s, seed=0)) for s in sizes]
    non_embedding = [c.non_embedding for c in counts]
    assert non_embedding == sorted(non_embedding) and len(set(non_embedding)) == len(sizes)
    assert non_embedding[-1] / non_embedding[0] >= 30
    for spec, count in zip(sizes, counts, strict=True):
        assert count.non_embedding == spec.non_embedding_params
        # Tied embeddings: total = non-embedding + one vocab x hidden matrix.
        assert count.total - count.non_embedding == len(build_tokenizer()) * spec.hidden_size
    # Depth and width grow together.
    assert [s.n_layers for s in sizes] == sorted(s.n_layers for s in sizes)
    assert [s.hidden_size for s in sizes] == sorted(s.hidden_size for s in sizes)


def test_count_params_untied_head_excluded():
    spec = next(iter(LADDER.values()))
    config = spec.config()
    config.tie_word_embeddings = False
    from transformers import Qwen2ForCausalLM

    model = Qwen2ForCausalLM(config)
    count = count_params(model)
    assert count.non_embedding == spec.non_embedding_params
    assert count.total == spec.non_embedding_params + 2 * config.vocab_size * spec.hidden_size


def test_build_model_is_seeded():
    name = next(iter(LADDER))
    a, b, c = (build_model(name, seed=s) for s in (1, 1, 2))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_save_load_round_trip_safetensors(tmp_path):
    tokenizer = build_tokenizer()
    model = build_model(next(iter(LADDER)), seed=0, tokenizer=tokenizer)
    save_model(model, tokenizer, tmp_path)
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    loaded, loaded_tokenizer = load_model(tmp_path)
    assert not loaded.training
    for (name, x), (_, y) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    text = "12+7="
    assert loaded_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits)


def test_load_model_refuses_non_safetensors(tmp_path):
    import pytest

    from rlscale.errors import DataError

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(DataError, match="safetensors"):
        load_model(tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_model(tmp_path / "missing")
