"""Mixed precision done right: bfloat16 compute over float32 master weights.

At the paper's lr 1e-6 an AdamW update is far below bfloat16's resolution (8 bits of mantissa),
so training bf16 parameters directly leaves most weights unchanged. With float32 master weights
the bf16 run must move the weights as the fp32 run does."""

import json

import pytest
import torch
import yaml

from rlscale.rl.config import load_config
from rlscale.rl.trainer import train


def _run(tmp_path, model_dir, dtype):
    base = {
        "model": str(model_dir), "dtype": dtype,
        "data": {"source": "arithmetic", "tiers": [1, 2], "n_problems": 128,
                 "holdout_easy": 8, "holdout_hard": 0},
        "steps": 2, "prompts_per_step": 16, "group_size": 8, "mini_batch_prompts": 8,
        "max_prompt_tokens": 16, "max_response_tokens": 24, "lr": 1e-6, "weight_decay": 0.1,
        "eval_every": 0, "checkpoint_every": 2, "out": str(tmp_path / "runs"),
        "experiment": "precision", "run_id": dtype, "threads": 1,
    }
    path = tmp_path / f"{dtype}.yaml"
    path.write_text(yaml.safe_dump(base))
    return train(load_config(path), progress=False)


def _final_weights(run_dir, model_dir):
    from safetensors.torch import load_model as load_into

    from rlscale.models import load_model

    model, _ = load_model(model_dir)
    load_into(model, str(run_dir / "checkpoints" / "step_000002" / "model.safetensors"))
    return dict(model.named_parameters())


def test_bf16_moves_the_weights_like_fp32(tmp_path):
    """On a pretrained member (real reward variance, so real gradients: a random model's are ~0
    and its Adam steps are weight decay alone)."""
    from rlscale.models import load_model
    from rlscale.pretrain.family import member_path

    model_dir = member_path("mini-42k", "base")
    start = {k: v.detach().clone() for k, v in load_model(model_dir)[0].named_parameters()}
    deltas = {}
    for dtype in ("float32", "bfloat16"):
        run_dir = _run(tmp_path, model_dir, dtype)
        final = _final_weights(run_dir, model_dir)
        assert all(t.dtype == torch.float32 for t in final.values())  # master weights saved
        steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
        assert all(0 < s["reward"] < 1 for s in steps)  # real reward variance, real gradients
        deltas[dtype] = {k: final[k].detach() - start[k] for k in start}
    for dtype, delta in deltas.items():
        moved = sum(int((d != 0).sum()) for d in delta.values())
        total = sum(d.numel() for d in delta.values())
        assert moved / total >= 0.9, (dtype, moved / total)
    norm = {dtype: torch.sqrt(sum((d ** 2).sum() for d in delta.values()))
            for dtype, delta in deltas.items()}
    assert norm["bfloat16"] == pytest.approx(float(norm["float32"]), rel=0.1)


def test_float16_is_refused_and_low_precision_recomputes_old_logprobs():
    from rlscale.errors import ConfigError

    with pytest.raises(ConfigError, match="float16 needs loss scaling"):
        load_config(None, ["model=mini-42k", "dtype=float16"])
    assert load_config(None, ["model=mini-42k", "dtype=bfloat16"]).recompute_old_logprobs
    assert not load_config(None, ["model=mini-42k"]).recompute_old_logprobs
    assert not load_config(None, ["model=mini-42k", "dtype=bfloat16",
                                  "recompute_old_logprobs=false"]).recompute_old_logprobs
