"""Warm start: a tiny step cap trains, records, caches and reuses; same seed, same weights."""

import json

import torch

from rlscale.models import LADDER, load_model
from rlscale.models.warmstart import WarmstartConfig, cache_key, warmstart

TINY = WarmstartConfig(batch_size=4, max_steps=3, eval_every=3, n_eval=4, max_new_tokens=6,
                       instruct_steps=2)


def test_warmstart_caches_and_reuses(tmp_path):
    name = next(iter(LADDER))
    first = warmstart(name, root=tmp_path, config=TINY, progress=False)
    assert not first.cached and first.steps == 3 and first.path.parent == tmp_path
    record = json.loads((first.path / "warmstart.json").read_text())
    assert record["steps"] == 3 and record["pass1"] == first.pass1
    assert record["N_nonembed"] == LADDER[name].non_embedding_params
    assert list(first.path.glob("*.safetensors"))
    again = warmstart(name, root=tmp_path, config=TINY, progress=False)
    assert again.cached and again.path == first.path and again.pass1 == first.pass1
    # Another seed, band or config is another cache entry.
    key = cache_key(name, "base", 0, (0.15, 0.40), TINY)
    assert first.path.name == key
    assert key != cache_key(name, "base", 1, (0.15, 0.40), TINY)
    assert key != cache_key(name, "base", 0, (0.15, 0.30), TINY)
    assert key != cache_key(name, "base", 0, (0.15, 0.40), TINY.model_copy(update={"lr": 1e-3}))
    more_instruct = TINY.model_copy(update={"instruct_steps": 9})
    assert key == cache_key(name, "base", 0, (0.15, 0.40), more_instruct)
    assert cache_key(name, "instruct", 0, (0.15, 0.40), TINY) != cache_key(
        name, "instruct", 0, (0.15, 0.40), more_instruct)
    # The instruct variant starts from the cached base and trains further.
    instruct = warmstart(name, root=tmp_path, config=TINY, variant="instruct", progress=False)
    assert not instruct.cached and instruct.steps == 2 and instruct.path != first.path
    base_model, _ = load_model(first.path)
    instruct_model, _ = load_model(instruct.path)
    assert not torch.equal(base_model.model.norm.weight, instruct_model.model.norm.weight)


def test_warmstart_is_reproducible(tmp_path):
    name = next(iter(LADDER))
    a = warmstart(name, root=tmp_path / "a", config=TINY, progress=False)
    b = warmstart(name, root=tmp_path / "b", config=TINY, progress=False)
    model_a, _ = load_model(a.path)
    model_b, _ = load_model(b.path)
    for x, y in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(x, y)
    assert a.path.name == b.path.name


def test_warmstart_bad_input(tmp_path):
    import pytest

    from rlscale.errors import ConfigError

    with pytest.raises(ValueError, match="variant"):
        warmstart(next(iter(LADDER)), variant="chat", root=tmp_path)
    with pytest.raises(ValueError, match="band"):
        warmstart(next(iter(LADDER)), band=(0.5, 0.2), root=tmp_path)
    with pytest.raises(ConfigError, match="unknown ladder size"):
        warmstart("mini-huge", root=tmp_path)


def test_cli_rejects_unknown_size_and_band():
    from typer.testing import CliRunner

    from rlscale.cli import app

    result = CliRunner().invoke(app, ["warmstart", "--sizes", "mini-huge"])
    assert result.exit_code != 0 and "mini-huge" in result.output
    result = CliRunner().invoke(app, ["warmstart", "--band", "0.5", "0.2"])
    assert result.exit_code != 0 and "--band" in result.output
