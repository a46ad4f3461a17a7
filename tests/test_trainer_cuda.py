"""The GPU path: GRPO steps on CUDA in float32 and bfloat16 (runs where a GPU is present)."""

import math

import pytest
import torch
import yaml

from rlscale.models import build_model, build_tokenizer, ladder_names
from rlscale.rl.config import load_config
from rlscale.rl.trainer import train
from rlscale.runs import read_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_grpo_steps_on_cuda(tmp_path, dtype):
    model_dir = tmp_path / "model"
    tokenizer = build_tokenizer()
    build_model(ladder_names()[1], seed=0, tokenizer=tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    base = {
        "model": str(model_dir), "device": "cuda", "dtype": dtype,
        "data": {"source": "arithmetic", "tiers": [1, 2], "n_problems": 512,
                 "holdout_easy": 64, "holdout_hard": 0},
        "steps": 4, "prompts_per_step": 32, "group_size": 8, "mini_batch_prompts": 16,
        "max_prompt_tokens": 32, "max_response_tokens": 32, "lr": 1e-3,
        "eval_every": 2, "checkpoint_every": 2, "out": str(tmp_path / "runs"),
        "experiment": "cuda", "run_id": dtype, "recompute_old_logprobs": dtype == "bfloat16",
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(base))
    run_dir = train(load_config(tmp_path / "c.yaml"), progress=False)
    run = read_run(run_dir)
    assert run.meta["status"] == "finished"
    assert list(run.steps["step"]) == [1, 2, 3, 4]
    for field in ("kl", "grad_norm", "flops", "C", "tokens_per_s"):
        assert all(math.isfinite(v) for v in run.steps[field]), field
    assert (run.steps["T"].diff().dropna() > 0).all()
    assert set(run.evals["step"]) == {0, 2, 4}
