"""Step accounting against a hand count on a tiny batch: D, tokens, C = 6 N T, FLOPs, and a run's
cumulative records."""

import json

import pytest
import torch

from rlscale.data.arithmetic import arithmetic_problems
from rlscale.models import build_model, build_tokenizer, save_model
from rlscale.models.flops import ModelShape, step_flops
from rlscale.reward import Verdict, Verifier
from rlscale.rl.config import load_config
from rlscale.rl.trainer import GRPOTrainer, RunData, Totals, _account, load_run_data, train
from rlscale.runs.schema import EvalRecord, RunMeta, StepRecord

G = 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def tiny_config(*extra):
    return load_config(None, ["model=unused", f"group_size={G}", "prompts_per_step=2",
                              "mini_batch_prompts=1", "max_response_tokens=6", "lr=1e-3",
                              *extra])


def test_one_step_matches_a_hand_count(tokenizer):
    model = build_model("mini-130k", seed=0, tokenizer=tokenizer)
    trainer = GRPOTrainer(tiny_config(), model, tokenizer)
    captured = []
    generate = trainer.engine.generate
    trainer.engine.generate = lambda *a, **k: captured.append(generate(*a, **k)) or captured[-1]
    problems = arithmetic_problems(2, seed=3, split="train")
    with Verifier() as verifier:
        figures = trainer.step(1, problems, verifier)
    rollouts = captured[0]

    # Prompt tokens: each prompt as the engine encodes it, once per rollout.
    prompt_lens = [len(tokenizer(p.prompt_text())["input_ids"]) for p in problems]
    assert figures["prompt_tokens"] == G * sum(prompt_lens)
    # Response tokens: the real (unpadded) tokens of the G x 2 responses, each <= the cap.
    response_lens = rollouts.response_mask.sum(1).long().tolist()
    assert len(response_lens) == 2 * G and max(response_lens) <= 6
    assert figures["response_tokens"] == sum(response_lens)
    assert figures["tokens"] == G * sum(prompt_lens) + sum(response_lens)
    assert figures["updates"] == 2  # 2 prompts / 1 prompt per mini-batch, 1 epoch
    expected_flops = step_flops(ModelShape.from_model(model), [n for n in prompt_lens
                                for _ in range(G)], response_lens, group_size=G,
                                old_policy_pass=False, reference_pass=True)
    assert figures["flops_step"] == expected_flops.total

    # Cumulative accounting over two steps, the second repeating one prompt.
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    totals = Totals()
    data = RunData(train=problems, schedule=[*problems, problems[0], problems[1]], eval_sets={})
    first = _account(1, problems, dict(figures), totals, trainer, data)
    second = _account(2, [problems[0], problems[0]], dict(figures), totals, trainer, data)
    assert (first["D"], first["D_unique"], second["D"], second["D_unique"]) == (2, 2, 4, 2)
    assert second["epoch"] == pytest.approx(4 / 2)
    assert second["T"] == 2 * figures["tokens"]
    assert first["C"] == pytest.approx(6 * n_params * figures["tokens"])
    assert second["C"] == pytest.approx(6 * n_params * 2 * figures["tokens"])
    assert second["flops"] == 2 * expected_flops.total


def test_run_records_are_consistent_with_the_schedule(tokenizer, tmp_path):
    model_dir = save_model(build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer,
                           tmp_path / "m")
    cfg = tiny_config(f"model={model_dir}", f"out={tmp_path}", "steps=3", "eval_every=0",
                      "data.n_problems=300", "data.holdout_easy=4", "data.holdout_hard=4",
                      "threads=1", "kl_coef=0")
    run_dir = train(cfg, progress=False)
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    evals = [json.loads(line) for line in (run_dir / "evals.jsonl").read_text().splitlines()]
    meta = json.loads((run_dir / "meta.json").read_text())

    schedule = load_run_data(cfg).schedule
    for i, record in enumerate(steps, start=1):
        batch = schedule[(i - 1) * 2: i * 2]
        assert record["step"] == i and record["D"] == 2 * i
        assert record["prompt_tokens"] == G * sum(len(tokenizer(p.prompt_text())["input_ids"])
                                                  for p in batch)
        assert record["T"] == sum(r["tokens"] for r in steps[:i])
        assert record["C"] == pytest.approx(6 * meta["N"] * record["T"])
        assert record["flops"] == pytest.approx(sum(r["flops_step"] for r in steps[:i]))
        assert record["kl"] == 0.0  # kl_coef=0: no reference pass
    assert meta["N"] == meta["N_total"] == sum(
        p.numel() for p in {id(p): p for p in build_model("mini-130k", seed=0).parameters()}
        .values())
    assert [(e["step"], e["eval_set"]) for e in evals] == [(0, "holdout"), (3, "holdout")]
    assert all(e["n_problems"] == 8 and e["L"] == pytest.approx(1 - e["pass1"]) for e in evals)
    assert torch.isfinite(torch.tensor([r["grad_norm"] for r in steps])).all()
    # The trainer writes every field of the run format (rlscale.runs.schema) and nothing else.
    native = set(StepRecord.model_fields) - set(StepRecord.fields_where("imports_only"))
    assert all(list(r) == [f for f in StepRecord.model_fields if f in native] for r in steps)
    without_noise = set(EvalRecord.model_fields) - {"noise_std", "noise_repeats"}  # repeats=0
    assert all(set(e) == without_noise for e in evals)
    assert set(meta) == set(RunMeta.model_fields) - {"resumed", "error", "primary_eval",
                                                     "imported"}


def test_reward_timeouts_score_zero_and_are_counted(tokenizer):
    trainer = GRPOTrainer(tiny_config(), build_model("mini-130k", seed=0, tokenizer=tokenizer),
                          tokenizer)

    class TimingOut:
        """Every check times out (as a stuck math-verify call would)."""

        def verify_batch(self, outputs, golds):
            return [Verdict(correct=True, extracted="1", timed_out=True) for _ in outputs]

    figures = trainer.step(1, arithmetic_problems(2, seed=3, split="train"), TimingOut())
    assert figures["reward_timeouts"] == 2 * G
    assert figures["reward"] == 0.0


@pytest.mark.parametrize("recompute", [False, True])
def test_old_logprobs_match_the_policy_before_its_update(tokenizer, recompute):
    # One update a step: its ratios compare the policy with itself, so they must be 1 whether
    # the old log-probs are the sampling ones (on-policy) or recomputed.
    cfg = tiny_config("mini_batch_prompts=2", f"recompute_old_logprobs={recompute}")
    trainer = GRPOTrainer(cfg, build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer)
    with Verifier() as verifier:
        figures = trainer.step(1, arithmetic_problems(2, seed=3, split="train"), verifier)
    assert figures["updates"] == 1
    assert figures["ratio_min"] == pytest.approx(1.0, abs=1e-4)
    assert figures["ratio_max"] == pytest.approx(1.0, abs=1e-4)
    assert figures["clip_frac"] == 0.0
