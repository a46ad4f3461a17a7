"""The pretraining corpus of the miniature family: worked solutions, some of them flawed.

RL amplifies behaviour that pretraining already put in a model (Zhao et al. 2025, arXiv
2504.07912), and it only gains where pretraining left headroom the model can reach (Zhang,
Neubig, Yue 2025, arXiv 2512.07783). A corpus of correct solutions alone leaves none: a model
that imitates it is sure of what it knows and simply wrong where it is not competent, and GRPO
then only adds noise (docs/miniature.md has the measurement). So the corpus mixes correct worked
solutions with flawed ones, as text written by careful and sloppy writers is mixed on the web:
with probability `flaw_rate` one step's result is off by a small slip (-10, -1, +1 or +10: a
carry or a unit) and the wrong value is carried to the boxed answer. A model that imitates the
corpus makes such slips at the corpus's rate; where it is competent, a correct answer is
rewarded and a slip is not, which is exactly the signal GRPO needs. Where it is not competent,
its failures are real and RL cannot fix them: the share of a model's errors that are slips grows
with its size, and so does what RL can gain.
"""

from __future__ import annotations

import numpy as np

from rlscale.data.arithmetic import arithmetic_problems, arithmetic_solution, arithmetic_steps
from rlscale.data.problem import Problem

SLIPS = (-10, -1, 1, 10)
"""The deltas a flawed step is off by: a dropped or doubled carry (10) or a unit (1)."""


def flawed_solution(problem: Problem | str, rng: np.random.Generator) -> str:
    """A worked solution with one slip: a random step, a random delta of `SLIPS` that keeps the
    result non-negative (a result of 0 can only slip upwards)."""
    results = arithmetic_steps(problem)
    step = int(rng.integers(len(results)))
    allowed = [d for d in SLIPS if results[step] + d >= 0]
    return arithmetic_solution(problem, flaw=(step, int(rng.choice(allowed))))


def corpus_texts(problems: list[Problem], *, flaw_rate: float, seed: int) -> list[str]:
    """One solution text per problem: flawed with probability `flaw_rate`, else correct."""
    if not 0.0 <= flaw_rate < 1.0:
        raise ValueError(f"flaw_rate must be in [0, 1), got {flaw_rate}")
    rng = np.random.default_rng(seed)
    texts = []
    for problem in problems:
        flawed = rng.random() < flaw_rate
        texts.append(flawed_solution(problem, rng) if flawed else arithmetic_solution(problem))
    return texts


def pretraining_corpus(n: int, *, flaw_rate: float, seed: int, tiers=None
                       ) -> list[tuple[Problem, str]]:
    """`n` (problem, solution text) pairs from the built-in task's training side, every tier an
    equal share unless `tiers` says otherwise; the same arguments give the same corpus."""
    problems = arithmetic_problems(n, seed=seed, tiers=tiers, split="train")
    return list(zip(problems, corpus_texts(problems, flaw_rate=flaw_rate, seed=seed + 1),
                    strict=True))
