"""evaluate(): pass@1 with the rollout engine and the reward Verifier."""

import numpy as np
import pytest
import torch

from rlscale.data import Problem
from rlscale.models import LADDER, build_model, build_tokenizer
from rlscale.reward import Verifier
from rlscale.rl.evaluate import evaluate
from rlscale.rl.rollout import HFRolloutEngine, Rollouts


class ScriptedEngine:
    """A RolloutEngine answering from a script: prompt -> response text (the seam vLLM would use)."""

    def __init__(self, answers: dict[str, list[str]]):
        self.answers = answers

    def sync_weights(self, model):
        pass

    def generate(self, prompts, *, n=1, temperature=1.0, top_p=1.0, max_new_tokens=256,
                 greedy=False, seed=0) -> Rollouts:
        texts = [self.answers[p][k] for p in prompts for k in range(n)]
        rows = len(texts)
        return Rollouts(
            input_ids=torch.zeros((rows, 2), dtype=torch.long),
            attention_mask=torch.ones((rows, 2), dtype=torch.long),
            response_mask=torch.ones((rows, 1)), sampling_logprobs=torch.zeros((rows, 1)),
            prompt_index=[i // n for i in range(rows)], prompt_lens=[1] * rows,
            response_lens=[1] * rows, finished=[True] * rows, texts=texts, prompt_width=1,
        )


PROBLEMS = [Problem("p1", "1+2=", "3"), Problem("p2", "2+2=", "4"), Problem("p3", "5-1=", "4")]


def test_pass1_counts_correct_samples():
    engine = ScriptedEngine({
        "1+2=": ["\\boxed{3}", "\\boxed{3}"],
        "2+2=": ["\\boxed{4}", "\\boxed{5}"],
        "5-1=": ["no answer", "\\boxed{7}"],
    })
    with Verifier(use_math_verify=False) as verifier:
        result = evaluate(None, build_tokenizer(), PROBLEMS, verifier=verifier, samples=2,
                          engine=engine, batch_size=2)
    assert result.per_problem == [1.0, 0.5, 0.0]
    assert result.pass1 == pytest.approx(0.5)
    assert (result.n_problems, result.samples, result.n_timeouts) == (3, 2, 0)
    assert result.wall_time >= 0


def test_evaluate_real_model_is_seeded_and_restores_mode():
    tokenizer = build_tokenizer()
    model = build_model(next(iter(LADDER)), seed=0, tokenizer=tokenizer)
    model.train()
    kwargs = dict(samples=2, max_new_tokens=6, batch_size=2, seed=5)
    with Verifier(use_math_verify=False) as verifier:
        a = evaluate(model, tokenizer, PROBLEMS, verifier=verifier, **kwargs)
        b = evaluate(model, tokenizer, PROBLEMS, verifier=verifier, **kwargs)
        g = evaluate(model, tokenizer, PROBLEMS, verifier=verifier, greedy=True, max_new_tokens=6)
    assert model.training
    assert a == b.__class__(**{**b.__dict__, "wall_time": a.wall_time})
    assert a.n_problems == 3 and 0.0 <= a.pass1 <= 1.0 and 0.0 <= g.pass1 <= 1.0
    # The engine seam: an explicit HF engine gives the same result as the default one.
    c = evaluate(model, tokenizer, PROBLEMS, engine=HFRolloutEngine(model, tokenizer), **kwargs)
    assert c.per_problem == a.per_problem
    with pytest.raises(ValueError, match="at least one problem"):
        evaluate(model, tokenizer, [])


def test_sequence_probability_is_the_sampling_probability():
    """Teacher forcing a response scores it exactly as the sampler drew it."""
    from rlscale.models.scoring import sequence_probability

    tokenizer = build_tokenizer()
    model = build_model(next(iter(LADDER)), seed=1, tokenizer=tokenizer)
    engine = HFRolloutEngine(model, tokenizer)
    prompts = ["1+2=", "37+48-12="]
    rollouts = engine.generate(prompts, n=3, temperature=0.7, max_new_tokens=5, seed=3)
    responses = [rollouts.response_token_ids(i) for i in range(len(rollouts))]
    exact = sequence_probability(model, tokenizer, [prompts[i] for i in rollouts.prompt_index],
                                 responses, temperature=0.7)
    sampled = rollouts.sampling_logprobs.sum(-1).exp()
    assert torch.allclose(exact, sampled, rtol=1e-4, atol=0)
    none = sequence_probability(model, tokenizer, prompts, [None, responses[0]], temperature=0.7)
    assert none[0] == 0 and none[1] > 0


def test_canonical_estimator_without_solutions_is_the_sampled_one():
    tokenizer = build_tokenizer()
    model = build_model(next(iter(LADDER)), seed=0, tokenizer=tokenizer)
    kwargs = dict(samples=2, max_new_tokens=6, batch_size=2, seed=5)
    with Verifier(use_math_verify=False) as verifier:
        sampled = evaluate(model, tokenizer, PROBLEMS, verifier=verifier, **kwargs)
        canonical = evaluate(model, tokenizer, PROBLEMS, verifier=verifier, **kwargs,
                             estimator="canonical")
    assert canonical.per_problem == sampled.per_problem
    assert canonical.estimator == "canonical" and canonical.pass1_canonical == 0.0
    with pytest.raises(ValueError, match="canonical estimator"):
        evaluate(model, tokenizer, PROBLEMS, greedy=True, estimator="canonical")
    with pytest.raises(ValueError, match="estimator must be"):
        evaluate(model, tokenizer, PROBLEMS, estimator="exact")


def test_canonical_estimator_is_unbiased_and_less_noisy():
    """On a pretrained family member, canonical and sampled pass@1 agree within their errors, and
    the canonical one's sampling error is several times smaller."""
    from rlscale.data import arithmetic_problems
    from rlscale.models import load_model
    from rlscale.pretrain.family import member_path

    model, tokenizer = load_model(member_path("mini-308k", "base"))
    problems = arithmetic_problems(96, seed=11, split="test")
    kwargs = dict(samples=16, temperature=0.7, max_new_tokens=48, batch_size=96, seed=2)
    with Verifier(use_math_verify=False) as verifier:
        sampled = evaluate(model, tokenizer, problems, verifier=verifier, **kwargs)
        canonical = evaluate(model, tokenizer, problems, verifier=verifier, **kwargs,
                             estimator="canonical")
    assert 0.2 < sampled.pass1 < 0.9
    assert canonical.pass1_sampled == sampled.pass1  # the same samples underneath
    gap = abs(canonical.pass1 - sampled.pass1)
    assert gap < 4 * np.hypot(sampled.stderr, canonical.stderr)
    assert canonical.stderr < sampled.stderr / 3
    assert canonical.pass1_canonical <= canonical.pass1 + 4 * canonical.stderr
