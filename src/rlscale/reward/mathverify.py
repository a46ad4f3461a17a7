"""The math-verify comparison. Imported only inside verifier worker processes (it may hang)."""

import logging
from functools import lru_cache

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

# Our workers are killed from outside on timeout (see verifier.py); math-verify's own
# signal.alarm timeouts are switched off, so silence its warning about that.
logging.getLogger("math_verify").setLevel(logging.ERROR)

_TARGETS = (LatexExtractionConfig(), ExprExtractionConfig())


def math_verify_equal(gold: str, answer: str) -> bool:
    r"""Whether the extracted `answer` equals `gold`, as math-verify judges (plus one guard).

    As math-verify's README asks: LaTeX must sit in a math environment to be parsed, so the gold
    is wrapped in `$...$` and the answer in `\boxed{}`, and `verify(gold, answer)` gets the gold
    first (the comparison is not symmetric).
    """
    gold_parsed = list(_parse_gold(gold))
    answer_parsed = parse(f"\\boxed{{{answer}}}", list(_TARGETS), parsing_timeout=None)
    if not gold_parsed or not answer_parsed:
        return False
    if not verify(gold_parsed, answer_parsed, timeout_seconds=None):
        return False
    return not _exact_numbers_differ(gold_parsed[0], answer_parsed[0])


@lru_cache(maxsize=4096)  # a GRPO batch checks G answers against each gold
def _parse_gold(gold: str) -> tuple:
    return tuple(parse(f"${gold}$", list(_TARGETS), parsing_timeout=None))


def _exact_numbers_differ(gold, answer) -> bool:
    """math-verify compares exact numbers by `(a - b).evalf(chop=True) == 0`, which calls any two
    tiny numbers equal (1/2004! == 1/2006!). For two exact (float-free) numbers, require the
    relative difference to vanish instead."""
    exact = [
        isinstance(x, sympy.Expr) and x.is_number and not x.has(sympy.Float) for x in (gold, answer)
    ]
    if not all(exact) or gold.is_zero:
        return False
    try:
        relative = sympy.Abs((gold - answer) / gold).evalf(30)
        return not bool(relative < sympy.Float("1e-20"))
    except (TypeError, ValueError, ArithmeticError):  # not comparable (nan...): trust math-verify
        return False
