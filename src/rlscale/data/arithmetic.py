"""The built-in procedural task: integer + and - chains, the default task of the miniature ladder.

A problem is a short prompt such as ``37+48-12=`` and its worked solution is the left-to-right chain
``37+48=85,85-12=73,\\boxed{73}``: every step repeats the running value it starts from, so the inputs
of each step sit right before it (local copying is what tiny character-level models learn first),
and the final answer is in ``\\boxed{}`` so the same reward path serves this task and real math data.
Results never go negative (see `_draw_chain`), so numbers carry no sign and the chains stay short.
The format and the difficulty proxy are explained in docs/data.md.
"""

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rlscale.data.problem import Problem
from rlscale.errors import DataError


@dataclass(frozen=True)
class Tier:
    """A difficulty tier: operands of `digits` digits joined by `ops` operations (+ or -)."""

    digits: int
    ops: int

    @property
    def cost(self) -> int:
        """Work units of a solution: two per operand digit (a column sum and its carry), one per
        operation beyond the first. Digits weigh more because that is what tiny models found harder
        (docs/data.md)."""
        return 2 * self.digits + self.ops - 2

    @property
    def pass_rate(self) -> float:
        """Difficulty proxy in [0, 1], higher = easier: exp(-cost / 3) (see docs/data.md)."""
        return math.exp(-self.cost / PASS_RATE_SCALE)


PASS_RATE_SCALE = 3.0
# Ordered easy -> hard (strictly increasing cost), the order a 0.25M-1M model learns them in
# (docs/data.md). With exp(-cost/3), tiers 1-3 are easy (pass rate >= 0.3) and 4-6 hard, so the
# default mix is half easy, half hard, like the paper's hold-out set. Tiers 7-8 are opt-in
# (`tiers=[1, ..., 8]`): headroom above the family's top, which the one-stage family recipe
# cannot learn (docs/miniature.md, "A wider top"). Their solutions need up to 46 characters,
# within the miniature's 48-token response budget; longer chains would not fit.
ARITHMETIC_TIERS: dict[int, Tier] = {
    1: Tier(digits=1, ops=1),  # 7+5=            cost 1, pass rate 0.72
    2: Tier(digits=1, ops=2),  # 7+5-3=          cost 2, pass rate 0.51
    3: Tier(digits=2, ops=1),  # 37+48=          cost 3, pass rate 0.37
    4: Tier(digits=2, ops=2),  # 37+48-12=       cost 4, pass rate 0.26
    5: Tier(digits=3, ops=2),  # 374+481-129=    cost 6, pass rate 0.14
    6: Tier(digits=4, ops=1),  # 4821+3977=      cost 7, pass rate 0.10
    7: Tier(digits=4, ops=2),  # 4821+3977-1234= cost 8, pass rate 0.07
    8: Tier(digits=5, ops=1),  # 48213+39770=    cost 9, pass rate 0.05
}
DEFAULT_TIERS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
"""The tiers drawn when none are named: the task the shipped family was pretrained on."""


def tiers_problem(tiers: Sequence[int]) -> str | None:
    """Why `tiers` is not a usable tier list (None: it is); every reader of tiers says the same."""
    tiers = list(tiers)
    if not tiers or set(tiers) - set(ARITHMETIC_TIERS):
        return f"must be a non-empty subset of {list(ARITHMETIC_TIERS)}, got {tiers}"
    return None


ARITHMETIC_CHARSET = "0123456789+-=,\\boxed{}"
"""Every character a prompt or a solution can contain (each once)."""

SPLITS = ("train", "test")
TEST_FRACTION = 1 / 8
"""Share of all possible problems reserved for split="test", chosen by a hash of the prompt."""

_PROMPT = re.compile(r"(\d+)((?:[+-]\d+)+)=")
_TERM = re.compile(r"([+-])(\d+)")


def arithmetic_problems(
    n: int, *, seed: int, tiers: Sequence[int] | None = None, split: str | None = None
) -> list[Problem]:
    """`n` problems, the same for the same arguments.

    tiers: tier numbers of `ARITHMETIC_TIERS` (default: `DEFAULT_TIERS`); each gets an equal share of the n
    problems (the first n % len(tiers) tiers get one more), in a seeded random order.
    split: None draws from all problems; "train" / "test" draw only from a fixed, disjoint part of
    the problem space (by a hash of the prompt), so a held-out set never overlaps training data
    whatever the seeds.
    """
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}", field="n")
    if split is not None and split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS} or None, got {split!r}", field="split")
    chosen = list(DEFAULT_TIERS) if tiers is None else list(tiers)
    problem = tiers_problem(chosen)
    if problem is not None:
        raise DataError(f"tiers {problem}", field="tiers")
    rng = np.random.default_rng(seed)
    assignment = [chosen[i % len(chosen)] for i in range(n)]
    rng.shuffle(assignment)
    problems = []
    for i, tier_id in enumerate(assignment):
        tier = ARITHMETIC_TIERS[tier_id]
        prompt, answer = _draw_chain(tier, rng)
        while split is not None and _split_of(prompt) != split:  # rejection keeps it uniform
            prompt, answer = _draw_chain(tier, rng)
        problems.append(
            Problem(
                id=f"arith-{split or 'all'}-s{seed}-{i}",
                prompt=prompt,
                answer=str(answer),
                pass_rate=tier.pass_rate,
                source="arithmetic",
                metadata={"tier": tier_id, "digits": tier.digits, "ops": tier.ops},
                solution=arithmetic_solution(prompt),
            )
        )
    return problems


def arithmetic_solution(problem: Problem | str, *, flaw: tuple[int, int] | None = None) -> str:
    """The worked solution text, e.g. ``37+48=85,85-12=73,\\boxed{73}``.

    flaw: (step, delta) writes the result of that step (0-based) off by `delta` and carries the
    wrong value through the rest of the chain and into the boxed answer, as a sloppy but
    consistent writer would (the pretraining corpus mixes such solutions with correct ones). The
    flawed result must stay >= 0. Computed from the prompt (parsed, never evaluated as code).
    """
    prompt = problem if isinstance(problem, str) else problem.prompt_text()
    match = _PROMPT.fullmatch(prompt)
    if match is None:
        owner = "" if isinstance(problem, str) else f"problem {problem.id}: "
        raise DataError(f"{owner}not an arithmetic prompt: {prompt!r}", field="prompt")
    value = int(match.group(1))
    steps = []
    for i, (op, operand) in enumerate(_TERM.findall(match.group(2))):
        result = value + int(operand) if op == "+" else value - int(operand)
        if flaw is not None and i == flaw[0]:
            result += flaw[1]
            if result < 0:
                raise DataError(f"flaw {flaw} makes step {i} of {prompt!r} negative", field="flaw")
        steps.append(f"{value}{op}{operand}={result}")
        value = result
    return ",".join(steps) + f",\\boxed{{{value}}}"


def arithmetic_steps(problem: Problem | str) -> list[int]:
    """The correct result of each step of the chain, in order (the last is the answer)."""
    prompt = problem if isinstance(problem, str) else problem.prompt_text()
    match = _PROMPT.fullmatch(prompt)
    if match is None:
        raise DataError(f"not an arithmetic prompt: {prompt!r}", field="prompt")
    value, results = int(match.group(1)), []
    for op, operand in _TERM.findall(match.group(2)):
        value = value + int(operand) if op == "+" else value - int(operand)
        results.append(value)
    return results


def _draw_chain(tier: Tier, rng: np.random.Generator) -> tuple[str, int]:
    """One prompt of the tier and its value, evaluated left to right.

    An operation is "-" with probability 1/2 unless that would make the running value negative
    (then "+"): keeping every number unsigned keeps the charset and the solutions small.
    """
    low = 0 if tier.digits == 1 else 10 ** (tier.digits - 1)
    high = 10**tier.digits  # exclusive
    value = int(rng.integers(low, high))
    text = str(value)
    for _ in range(tier.ops):
        operand = int(rng.integers(low, high))
        subtract = bool(rng.integers(2)) and operand <= value
        value = value - operand if subtract else value + operand
        text += f"{'-' if subtract else '+'}{operand}"
    return text + "=", value


def _split_of(prompt: str) -> str:
    """The fixed train/test side of a prompt (a stable hash, independent of Python's hash seed)."""
    digest = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=8).digest(), "big")
    return "test" if digest % round(1 / TEST_FRACTION) == 0 else "train"
