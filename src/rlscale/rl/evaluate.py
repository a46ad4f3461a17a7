"""Held-out evaluation: pass@1 at the eval temperature, by one of two estimators.

- "sampled" (the paper's): the mean correctness of `samples` responses per problem.
- "canonical": for problems that carry a canonical correct response (`Problem.solution`, e.g. the
  built-in task's worked solution), the probability q_i that the model writes exactly that
  response is computed by teacher forcing (the product of its tokens' temperature-scaled
  probabilities, end-of-sequence included), and the sampled responses only estimate the rest:
      pass1_i = q_i + mean_s( correct_is - canonical_is )
  where canonical_is says the sample is token for token the canonical response. The expectation
  of the sampled term is P(correct) - q_i, so the estimate is unbiased for pass@1 at the same
  temperature, and its sampling noise comes only from correct answers written another way (a
  few percent of the mass here), not from the whole binomial. Problems without a solution fall
  back to the sampled estimate.
"""

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from rlscale.data.problem import Problem
from rlscale.models.scoring import sequence_probability
from rlscale.rl.rollout import HFRolloutEngine, RolloutEngine, render_prompt

ESTIMATORS = ("sampled", "canonical")


@dataclass(frozen=True)
class EvalResult:
    pass1: float  # the estimator's pass@1 over problems; test loss L = 1 - pass1
    n_problems: int
    samples: int
    wall_time: float
    n_timeouts: int  # verifications that hit the time limit (scored 0)
    per_problem: list[float]  # the estimate per problem, in the problems' order
    estimator: str = "sampled"
    stderr: float = math.nan  # standard error of pass1 from the sampling (iid samples)
    pass1_sampled: float = math.nan  # plain mean correctness of the samples (the paper's)
    pass1_canonical: float | None = None  # mean exact P(canonical response), "canonical" only


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
    estimator: str = "sampled",
) -> EvalResult:
    """pass@1 of `model` on `problems` (the paper: 1 sample at T=0.7; greedy as an option).

    verifier: a `rlscale.reward.Verifier` to reuse (None opens a local one);
    engine: a RolloutEngine to sample with (None: an HFRolloutEngine over model and tokenizer).
    estimator: "sampled" or "canonical" (module doc; needs the model, T > 0 and top_p = 1).
    Batches of `batch_size` problems are sampled with seeds seed, seed+1, ... so the result
    depends only on the arguments.
    """
    if not problems:
        raise ValueError("evaluate needs at least one problem")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if estimator == "canonical" and (greedy or top_p < 1.0 or model is None):
        raise ValueError("the canonical estimator needs the model, sampling (not greedy) and "
                         "top_p = 1: it scores the full temperature-scaled distribution")
    from rlscale.reward import Verifier  # reward/ is a sibling area; imported where used

    engine = engine or HFRolloutEngine(model, tokenizer)
    start = time.perf_counter()
    correct = torch.zeros(len(problems))
    terms = torch.zeros(len(problems))  # per problem: sum over samples of the estimator's term
    exact = torch.zeros(len(problems))  # q_i, exact P(canonical response); 0 without a solution
    sample_terms: list[float] = []
    n_timeouts = 0
    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    owned = verifier is None
    with Verifier() if owned else nullcontext(verifier) as checker:
        for batch_no, first in enumerate(range(0, len(problems), batch_size)):
            batch = problems[first : first + batch_size]
            prompts = [render_prompt(p, tokenizer) for p in batch]
            canonical = None
            if estimator == "canonical":
                canonical = [_canonical_ids(p, tokenizer, max_new_tokens) for p in batch]
                exact[first : first + len(batch)] = sequence_probability(
                    model, tokenizer, prompts, canonical, temperature=temperature)
            rollouts = engine.generate(
                prompts,
                n=samples,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                greedy=greedy,
                seed=seed + batch_no,
            )
            golds = [batch[i].answer for i in rollouts.prompt_index]
            verdicts = checker.verify_batch(rollouts.texts, golds)
            for row, (i, verdict) in enumerate(zip(rollouts.prompt_index, verdicts, strict=True)):
                hit = float(verdict.correct)
                term = hit
                if canonical is not None and canonical[i] is not None:
                    term -= float(rollouts.response_token_ids(row) == canonical[i])
                correct[first + i] += hit
                terms[first + i] += term
                sample_terms.append(term)
                n_timeouts += int(verdict.timed_out)
    if was_training:
        model.train()
    per_problem = (exact + terms / samples).tolist()
    n = len(sample_terms)
    spread = torch.tensor(sample_terms).std().item() if n > 1 else math.nan
    return EvalResult(
        pass1=sum(per_problem) / len(per_problem),
        n_problems=len(problems),
        samples=samples,
        wall_time=time.perf_counter() - start,
        n_timeouts=n_timeouts,
        per_problem=per_problem,
        estimator=estimator,
        stderr=spread / math.sqrt(n) if n > 1 else math.nan,
        pass1_sampled=correct.sum().item() / n,  # in float64, as the sampled pass1
        pass1_canonical=float(exact.mean()) if estimator == "canonical" else None,
    )


def _canonical_ids(problem: Problem, tokenizer, max_new_tokens: int) -> list[int] | None:
    """The canonical response as the tokens a sampler would emit (eos last), or None when the
    problem has none or it cannot fit in max_new_tokens (then it is never sampled either)."""
    if problem.solution is None:
        return None
    ids = tokenizer(problem.solution, add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id]
    return ids if len(ids) <= max_new_tokens else None
