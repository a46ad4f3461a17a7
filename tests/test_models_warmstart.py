"""Warm start: a tiny step cap trains, records, caches and reuses; same seed, same weights."""

import json

import torch

from rlscale.models import LADDER, load_model
from rlscale.models.warmstart import WarmstartConfig, warmstart

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
    # Another seed or config is another cache entry.
    other = warmstart(name, root=tmp_path, config=TINY, seed=1, progress=False)
    assert other.path != first.path
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
