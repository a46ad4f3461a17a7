"""The rollout seam: the trainer samples through the RolloutEngine it is given and syncs it after
each step's updates; every log-prob (trainer, evaluation, tests) comes from one function."""

import math

import pytest
import torch

from rlscale.data import Problem
from rlscale.data.arithmetic import arithmetic_problems
from rlscale.models import build_model, build_tokenizer, save_model, scoring
from rlscale.models.scoring import response_logprobs
from rlscale.reward import Verifier
from rlscale.rl import trainer as trainer_module
from rlscale.rl.config import load_config
from rlscale.rl.evaluate import evaluate
from rlscale.rl.rollout import HFRolloutEngine, RolloutEngine
from rlscale.rl.trainer import GRPOTrainer, train

G = 3


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def tiny_config(*extra):
    return load_config(None, ["model=unused", f"group_size={G}", "prompts_per_step=2",
                              "mini_batch_prompts=1", "max_response_tokens=6", "lr=1e-3",
                              *extra])


class RecordingEngine(HFRolloutEngine):
    """An HF engine that logs its calls in `events` (shared with the test) and can rewrite what
    it returns: `edit(rollouts)` stands in for another engine's output."""

    def __init__(self, model, tokenizer, events: list, edit=None):
        super().__init__(model, tokenizer)
        self.events, self.edit, self.calls, self.outputs, self.synced = events, edit, [], [], []

    def generate(self, prompts, **kwargs):
        self.events.append("generate")
        self.calls.append((list(prompts), kwargs))
        rollouts = super().generate(prompts, **kwargs)
        if self.edit is not None:
            rollouts = self.edit(rollouts)
        self.outputs.append(rollouts)
        return rollouts

    def sync_weights(self, model):
        self.events.append("sync")
        self.synced.append(model)
        super().sync_weights(model)


def _log_updates(trainer, events):
    real = trainer.optimizer.step
    trainer.optimizer.step = lambda *a, **k: events.append("update") or real(*a, **k)


def test_trainer_samples_through_the_given_engine_and_syncs_after_each_step(tokenizer):
    model = build_model("mini-130k", seed=0, tokenizer=tokenizer)
    events: list[str] = []
    engine = RecordingEngine(model, tokenizer, events)
    assert isinstance(engine, RolloutEngine)
    trainer = GRPOTrainer(tiny_config(), model, tokenizer, engine=engine)
    assert trainer.engine is engine
    _log_updates(trainer, events)
    problems = arithmetic_problems(4, seed=3, split="train")
    with Verifier() as verifier:
        for step in (1, 2):
            trainer.step(step, problems[2 * step - 2: 2 * step], verifier)
    # Per step: one generate, the step's 2 updates, then exactly one sync, before the next step.
    assert events == ["generate", "update", "update", "sync"] * 2
    assert engine.synced == [model, model]
    prompts, kwargs = engine.calls[0]
    assert prompts == trainer.render(problems[:2])
    assert kwargs["n"] == G and kwargs["max_new_tokens"] == 6 and "seed" in kwargs


def test_trainer_uses_the_engine_output(tokenizer):
    problems = arithmetic_problems(2, seed=3, split="train")

    def first_of_each_group_is_right(rollouts):  # another engine's texts
        rollouts.texts = [f"\\boxed{{{problems[i // G].answer}}}" if i % G == 0 else "no"
                          for i in range(len(rollouts))]
        return rollouts

    model = build_model("mini-130k", seed=0, tokenizer=tokenizer)
    engine = RecordingEngine(model, tokenizer, [], edit=first_of_each_group_is_right)
    trainer = GRPOTrainer(tiny_config(), model, tokenizer, engine=engine)
    with Verifier() as verifier:
        figures = trainer.step(1, problems, verifier)
    rollouts = engine.outputs[0]
    assert figures["reward"] == pytest.approx(1 / G)
    assert figures["response_tokens"] == sum(rollouts.response_lens)
    assert figures["prompt_tokens"] == sum(rollouts.prompt_lens)


def test_an_engine_without_logprobs_gets_them_recomputed(tokenizer):
    """sampling_logprobs is optional: without them the trainer scores the old policy itself (and
    counts that pass); with one update a step the ratios are still exactly the policy's own."""
    def drop_logprobs(rollouts):
        rollouts.sampling_logprobs = None
        return rollouts

    model = build_model("mini-130k", seed=0, tokenizer=tokenizer)
    engine = RecordingEngine(model, tokenizer, [], edit=drop_logprobs)
    cfg = tiny_config("mini_batch_prompts=2")
    assert not cfg.recompute_old_logprobs
    trainer = GRPOTrainer(cfg, model, tokenizer, engine=engine)
    with Verifier() as verifier:
        figures = trainer.step(1, arithmetic_problems(2, seed=3, split="train"), verifier)
    assert figures["ratio_min"] == pytest.approx(1.0, abs=1e-4)
    assert figures["ratio_max"] == pytest.approx(1.0, abs=1e-4)
    reference = GRPOTrainer(cfg, build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer)
    with Verifier() as verifier:
        on_policy = reference.step(1, arithmetic_problems(2, seed=3, split="train"), verifier)
    assert figures["flops_step"] > on_policy["flops_step"]  # the old-policy pass is counted


def naive_logprobs(model, rollouts, temperature=1.0):
    """Token by token: each prefix alone (no padding), the next token's tempered log-prob."""
    out = torch.zeros(rollouts.response_mask.shape)
    entropy = torch.zeros(rollouts.response_mask.shape)
    for i in range(len(rollouts)):
        prompt, response = rollouts.prompt_token_ids(i), rollouts.response_token_ids(i)
        for t, token in enumerate(response):
            ids = torch.tensor([prompt + response[:t]])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -1].double() / temperature
            logp = torch.log_softmax(logits, -1)
            out[i, t] = float(logp[token])
            entropy[i, t] = float(-(logp.exp() * logp).sum())
    return out, entropy


@pytest.mark.parametrize("group_size", [None, 2])
def test_response_logprobs_agree_with_a_naive_loop(tokenizer, group_size):
    model = build_model("mini-130k", seed=1, tokenizer=tokenizer).eval()
    rollouts = HFRolloutEngine(model, tokenizer).generate(
        ["1+2=", "37+48-12=", "7"], n=2, temperature=0.8, max_new_tokens=7, seed=4)
    expected, expected_entropy = naive_logprobs(model, rollouts, temperature=0.8)
    with torch.no_grad():
        got = response_logprobs(model, rollouts.input_ids, rollouts.attention_mask,
                                rollouts.prompt_width, temperature=0.8, group_size=group_size,
                                with_entropy=True)
    assert got.logp.dtype == torch.float32 and got.logp.shape == rollouts.response_mask.shape
    assert torch.allclose(got.logp, expected, atol=1e-5, rtol=0)
    assert torch.allclose(got.entropy, expected_entropy, atol=1e-5, rtol=0)
    assert (got.logp[rollouts.response_mask == 0] == 0).all()  # 0 on padding
    # The sampler's own log-probs are the same numbers (same log-softmax).
    assert torch.allclose(rollouts.sampling_logprobs, expected, atol=1e-5, rtol=0)
    # Rows padded wider than they need are trimmed to their own longest prompt and response.
    pad = tokenizer.pad_token_id
    wide_ids = torch.nn.functional.pad(rollouts.input_ids, (2, 3), value=pad)
    wide_mask = torch.nn.functional.pad(rollouts.attention_mask, (2, 3), value=0)
    with torch.no_grad():
        trimmed = response_logprobs(model, wide_ids, wide_mask, rollouts.prompt_width + 2,
                                    temperature=0.8, group_size=group_size).logp
    assert torch.equal(trimmed, got.logp)
    if group_size:
        with pytest.raises(ValueError, match="share one prompt"):
            response_logprobs(model, rollouts.input_ids[1:5], rollouts.attention_mask[1:5],
                              rollouts.prompt_width, group_size=2)


def test_response_logprobs_gradient_and_autocast(tokenizer):
    model = build_model("mini-130k", seed=1, tokenizer=tokenizer)
    rollouts = HFRolloutEngine(model, tokenizer).generate(["1+2=", "5-1="], n=2,
                                                         max_new_tokens=5, seed=0)
    args = (model, rollouts.input_ids, rollouts.attention_mask, rollouts.prompt_width)
    logp = response_logprobs(*args, group_size=2).logp
    logp.sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0
    with torch.no_grad():
        low = response_logprobs(*args, group_size=2, autocast=torch.bfloat16).logp
    assert low.dtype == torch.float32
    assert not torch.equal(low, logp.detach())  # really computed in bfloat16 ...
    assert torch.allclose(low, logp.detach(), atol=0.1)  # ... and close


def test_the_trainer_and_evaluate_score_through_the_one_function(tokenizer, monkeypatch):
    calls = []
    real = scoring.response_logprobs

    def counting(model, *args, **kwargs):
        calls.append({"grad": torch.is_grad_enabled(), "group_size": kwargs.get("group_size"),
                      "entropy": kwargs.get("with_entropy", False)})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(scoring, "response_logprobs", counting)
    # The trainer: old-policy (recomputed), reference and policy passes.
    cfg = tiny_config("mini_batch_prompts=2", "recompute_old_logprobs=true", "kl_coef=0.01")
    trainer = GRPOTrainer(cfg, build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer)
    with Verifier() as verifier:
        trainer.step(1, arithmetic_problems(2, seed=3, split="train"), verifier)
    assert [c["grad"] for c in calls] == [False, False, True]  # old, reference, the update
    assert all(c["group_size"] == G for c in calls) and calls[-1]["entropy"]
    # evaluate's canonical estimator: sequence_probability.
    calls.clear()
    problems = [Problem("a", "1+2=", "3", solution="1+2=3 \\boxed{3}"),
                Problem("b", "2+2=", "4")]
    with Verifier(use_math_verify=False) as verifier:
        result = evaluate(trainer.model, tokenizer, problems, verifier=verifier, samples=1,
                          max_new_tokens=24, estimator="canonical")
    assert len(calls) == 1 and calls[0]["group_size"] is None and not calls[0]["grad"]
    assert 0 < result.pass1_canonical < 1 and math.isfinite(result.pass1)


def test_a_resumed_run_syncs_the_engine_to_the_checkpoint(tokenizer, tmp_path, monkeypatch):
    model_dir = save_model(build_model("mini-130k", seed=0, tokenizer=tokenizer), tokenizer,
                           tmp_path / "model")
    cfg = load_config(None, [f"model={model_dir}", f"out={tmp_path / 'runs'}",
                             "data.n_problems=64", "data.holdout_easy=2", "data.holdout_hard=2",
                             "prompts_per_step=2", "mini_batch_prompts=2", "group_size=2",
                             "max_response_tokens=6", "lr=3e-3", "eval_every=0", "steps=2",
                             "checkpoint_every=1", "reward_workers=1", "threads=1"])
    real_step = trainer_module.GRPOTrainer.step

    def crash_at_step_2(self, step, problems, verifier):
        if step == 2:
            raise RuntimeError("simulated crash")
        return real_step(self, step, problems, verifier)

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module.GRPOTrainer, "step", crash_at_step_2)
        with pytest.raises(RuntimeError, match="simulated"):
            train(cfg, progress=False)

    events = []

    def log(name, real):
        def wrapper(*args, **kwargs):
            events.append(name)
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(trainer_module.ckpt, "load_checkpoint",
                        log("load", trainer_module.ckpt.load_checkpoint))
    monkeypatch.setattr(HFRolloutEngine, "sync_weights", log("sync", HFRolloutEngine.sync_weights))
    monkeypatch.setattr(HFRolloutEngine, "generate", log("generate", HFRolloutEngine.generate))
    train(cfg, resume=True, progress=False)
    # Resumed from step 1's checkpoint: synced to its weights before step 2 samples, then synced
    # after step 2's update (before the final evaluation samples).
    assert events[:5] == ["load", "sync", "generate", "sync", "generate"]
