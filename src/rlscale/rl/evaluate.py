"""Held-out evaluation: pass@1 = mean correctness of `samples` responses per problem."""

import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from rlscale.data.problem import Problem
from rlscale.rl.rollout import HFRolloutEngine, RolloutEngine, render_prompt


@dataclass(frozen=True)
class EvalResult:
    pass1: float  # mean over problems of the fraction of correct samples; test loss L = 1 - pass1
    n_problems: int
    samples: int
    wall_time: float
    n_timeouts: int  # verifications that hit the time limit (scored 0)
    per_problem: list[float]  # fraction correct per problem, in the problems' order


def evaluate(
    model,
    tokenizer,
    problems: list[Problem],
    *,
    verifier=None,
    samples: int = 1,
    temperature: float = 0.7,
    top_p: float = 1.0,
    greedy: bool = False,
    max_new_tokens: int = 256,
    batch_size: int = 64,
    seed: int = 0,
    engine: RolloutEngine | None = None,
) -> EvalResult:
    """pass@1 of `model` on `problems` (the paper: 1 sample at T=0.7; greedy as an option).

    verifier: a `rlscale.reward.Verifier` to reuse (None opens a local one);
    engine: a RolloutEngine to sample with (None: an HFRolloutEngine over model and tokenizer).
    Batches of `batch_size` problems are sampled with seeds seed, seed+1, ... so the result
    depends only on the arguments.
    """
    if not problems:
        raise ValueError("evaluate needs at least one problem")
    from rlscale.reward import Verifier  # reward/ is a sibling area; imported where used

    engine = engine or HFRolloutEngine(model, tokenizer)
    start = time.perf_counter()
    correct = torch.zeros(len(problems))
    n_timeouts = 0
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    owned = verifier is None
    with Verifier() if owned else nullcontext(verifier) as checker:
        for batch_no, first in enumerate(range(0, len(problems), batch_size)):
            batch = problems[first : first + batch_size]
            rollouts = engine.generate(
                [render_prompt(p, tokenizer) for p in batch],
                n=samples,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                greedy=greedy,
                seed=seed + batch_no,
            )
            golds = [batch[i].answer for i in rollouts.prompt_index]
            verdicts = checker.verify_batch(rollouts.texts, golds)
            for i, verdict in zip(rollouts.prompt_index, verdicts, strict=True):
                correct[first + i] += float(verdict.correct)
                n_timeouts += int(verdict.timed_out)
    if was_training:
        model.train()
    per_problem = (correct / samples).tolist()
    return EvalResult(
        pass1=sum(per_problem) / len(per_problem),
        n_problems=len(problems),
        samples=samples,
        wall_time=time.perf_counter() - start,
        n_timeouts=n_timeouts,
        per_problem=per_problem,
    )
