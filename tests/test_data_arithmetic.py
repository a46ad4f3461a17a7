import re
from collections import Counter

import pytest

from rlscale.data import (
    ARITHMETIC_CHARSET,
    ARITHMETIC_TIERS,
    DEFAULT_TIERS,
    EASY_THRESHOLD,
    Problem,
    arithmetic_problems,
    arithmetic_solution,
    curriculum_order,
)
from rlscale.errors import DataError


def evaluate_chain(prompt: str) -> int:
    """Independent reference: tokenise "a+b-c=" and fold left to right (no eval)."""
    assert prompt.endswith("=")
    tokens = re.findall(r"\d+|[+-]", prompt[:-1])
    value = int(tokens[0])
    for op, number in zip(tokens[1::2], tokens[2::2], strict=True):
        value = value + int(number) if op == "+" else value - int(number)
    return value


def last_boxed(text: str) -> str:
    match = re.search(r"\\boxed\{([^{}]*)\}$", text)
    assert match, text
    return match.group(1)


@pytest.fixture(scope="module")
def many() -> list[Problem]:
    return arithmetic_problems(6000, seed=11)


def test_deterministic_by_seed():
    first = arithmetic_problems(300, seed=3)
    again = arithmetic_problems(300, seed=3)
    assert first == again
    assert [p.metadata for p in first] == [p.metadata for p in again]
    assert [p.prompt for p in arithmetic_problems(300, seed=4)] != [p.prompt for p in first]
    assert len({p.id for p in first}) == 300


def test_answers_are_integers_and_solutions_agree(many):
    for p in many:
        expected = evaluate_chain(p.prompt)
        assert p.answer == str(expected)
        solution = arithmetic_solution(p)
        assert last_boxed(solution) == p.answer
        # each step is a true equation on the running value
        for left, op, right, result in re.findall(r"(\d+)([+-])(\d+)=(\d+)", solution):
            assert int(result) == (int(left) + int(right) if op == "+" else int(left) - int(right))


def test_short_texts_within_charset(many):
    allowed = set(ARITHMETIC_CHARSET)
    assert len(ARITHMETIC_CHARSET) == len(allowed)
    assert all(ch.isprintable() and ch.isascii() for ch in ARITHMETIC_CHARSET)
    for p in many:
        solution = arithmetic_solution(p)
        assert len(p.prompt) <= 24 and len(solution) <= 40, (p.prompt, solution)
        assert set(p.prompt) | set(solution) <= allowed
    used = set().union(*(set(p.prompt) | set(arithmetic_solution(p)) for p in many))
    assert used == allowed  # the charset lists nothing the task never writes


def test_tiers_shape_and_difficulty(many):
    for p in many:
        tier = ARITHMETIC_TIERS[p.metadata["tier"]]
        numbers = re.findall(r"\d+", p.prompt)
        assert len(numbers) == tier.ops + 1 == p.metadata["ops"] + 1
        assert all(len(x) == tier.digits for x in numbers)
        assert p.pass_rate == tier.pass_rate
    rates = [ARITHMETIC_TIERS[t].pass_rate for t in sorted(ARITHMETIC_TIERS)]
    assert all(0 < r <= 1 for r in rates)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))  # strictly harder


def test_default_mix_has_easy_and_hard(many):
    counts = Counter(p.metadata["tier"] for p in many)
    assert set(counts) == set(DEFAULT_TIERS) == {1, 2, 3, 4, 5, 6}  # tiers 7-8 are opt-in
    assert max(counts.values()) - min(counts.values()) <= 1  # equal shares
    easy = sum(p.pass_rate >= EASY_THRESHOLD for p in many) / len(many)
    assert 0.25 <= easy <= 0.75
    # curriculum order puts the easy tiers first
    ordered = [p.metadata["tier"] for p in curriculum_order(many)]
    assert ordered == sorted(ordered)


def test_tier_selection():
    problems = arithmetic_problems(50, seed=0, tiers=[2, 5])
    assert Counter(p.metadata["tier"] for p in problems) == {2: 25, 5: 25}
    with pytest.raises(DataError, match="tiers"):
        arithmetic_problems(5, seed=0, tiers=[99])
    with pytest.raises(DataError, match="tiers"):
        arithmetic_problems(5, seed=0, tiers=[])


def test_results_never_negative(many):
    for p in many:
        solution = arithmetic_solution(p)
        assert "=-" not in solution and not p.answer.startswith("-")


def test_train_and_test_splits_are_disjoint():
    train = arithmetic_problems(3000, seed=0, split="train", tiers=[1, 2, 3])
    test = arithmetic_problems(3000, seed=1, split="test", tiers=[1, 2, 3])
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert {p.metadata["tier"] for p in test} == {1, 2, 3}
    assert arithmetic_problems(10, seed=1, split="test") == arithmetic_problems(
        10, seed=1, split="test"
    )
    with pytest.raises(DataError, match="split"):
        arithmetic_problems(3, seed=0, split="validation")


def test_solution_of_text_and_bad_prompt():
    assert arithmetic_solution("37+48-12=") == "37+48=85,85-12=73,\\boxed{73}"
    with pytest.raises(DataError, match="prompt"):
        arithmetic_solution(Problem("q", "What is 2+2?", "4"))
    with pytest.raises(DataError):
        arithmetic_solution("__import__('os')=")


def test_the_opt_in_hard_tiers_fit_the_miniature_response_budget():
    """Tiers 7-8 (4 digits x 2 operations, 5 digits x 1) are harder than every default tier, hard
    by the easy/hard split, and their worked solutions plus eos fit the miniature recipe's
    48-token response budget (one token a character) even at their largest operands."""
    from rlscale.models.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    hard = arithmetic_problems(4000, seed=5, tiers=[7, 8])
    assert {p.metadata["tier"] for p in hard} == {7, 8}
    assert max(p.pass_rate for p in hard) < min(ARITHMETIC_TIERS[t].pass_rate
                                                 for t in DEFAULT_TIERS)
    assert all(p.pass_rate < EASY_THRESHOLD for p in hard)
    worst = ["9999+9999-1000=", "99999+99999="]  # the longest running values either tier writes
    lengths = [len(tokenizer(arithmetic_solution(t), add_special_tokens=False)["input_ids"]) + 1
               for t in worst + [p.prompt for p in hard]]
    assert max(lengths) <= 48, max(lengths)
    for p in hard:
        assert last_boxed(arithmetic_solution(p)) == p.answer == str(evaluate_chain(p.prompt))
