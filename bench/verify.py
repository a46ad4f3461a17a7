"""Answers per second of the batch verifier on MATH-500 ground truths.

    python bench/verify.py [--workers 2] [--timeout 5]

Three passes: each of the 500 ground truths against itself (boxed inside a sentence; the in-process
fast path), each plain-number ground truth against `(gt - 1) + 1` (equivalent; only math-verify can
judge it), and each ground truth against a perturbed wrong answer (first digit changed, or "+1").
A fourth pass sends hostile answers (exponent towers, deep nesting, 10k-character expressions)
that sympy could spend the whole timeout on: the pre-check (`reward.extract.too_complex`) scores
them incorrect before math-verify, so the pass stays fast; it prints how many the pre-check took.
Prints answers/s, timeouts and how many verdicts are right (correct = True, True, False, False).
"""

import argparse
import re
import time
from pathlib import Path

import pyarrow.parquet as pq

from rlscale.reward import Verifier, normalize_answer, parse_number

MATH_500 = Path(__file__).resolve().parents[1].parent / "shared/data/eval/math__math_500.parquet"


def ground_truths(path: Path) -> list[str]:
    rows = pq.read_table(path, columns=["reward_model"]).column("reward_model").to_pylist()
    return [row["ground_truth"] for row in rows]


def math_verify_form(gold: str) -> str | None:
    """`(gold - 1) + 1` for a plain number: equivalent, but only math-verify can tell. None for
    other golds (sets, intervals, text) where no rewrite is equivalent in every case."""
    plain = normalize_answer(gold)
    return None if parse_number(plain) is None else f"({plain} - 1) + 1"


def perturbed(gold: str) -> str:
    match = re.search(r"\d", gold)
    if match is None:
        return gold + "+1"
    return gold[:match.start()] + str((int(match[0]) + 1) % 10) + gold[match.end():]


def hostile_answers(n: int) -> list[str]:
    """Answers built to make a symbolic checker hang: towers, deep brackets, very long sums."""
    forms = [lambda i: "^{".join([str(i + 9)] * 4) + "}" * 3,
             lambda i: "(" * 40 + str(i) + ")" * 40,
             lambda i: "+".join(f"x^{j}" for j in range(2000 + i)),
             lambda i: f"{i}^{{{i}^{{{i}^{{{i}^{{{i}}}}}}}}}"]
    return [forms[i % len(forms)](i) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--data", type=Path, default=MATH_500)
    args = parser.parse_args()

    golds = ground_truths(args.data)
    numeric = [(form, gold) for gold in golds if (form := math_verify_form(gold))]
    passes = {  # name: (answers, golds, the right verdict)
        "self (fast path)": (golds, golds, True),
        "equivalent rewrite": ([f for f, _ in numeric], [g for _, g in numeric], True),
        "perturbed wrong": ([perturbed(gold) for gold in golds], golds, False),
        "hostile (pre-check)": (hostile_answers(200), ["1"] * 200, False),
    }
    print(f"{len(golds)} MATH-500 ground truths, {args.workers} worker(s), "
          f"timeout {args.timeout:g} s")
    with Verifier(workers=args.workers, timeout=args.timeout) as verifier:
        verifier.verify_batch([r"\boxed{x+1}"] * args.workers, ["1+x"] * args.workers)  # warm up
        for name, (answers, answer_golds, expected) in passes.items():
            outputs = [rf"Thus the final answer is $\boxed{{{a}}}$." for a in answers]
            timeouts_before, complex_before = verifier.n_timeouts, verifier.n_too_complex
            started = time.perf_counter()
            verdicts = verifier.verify_batch(outputs, answer_golds)
            seconds = time.perf_counter() - started
            agree = sum(v.correct == expected for v in verdicts)
            print(f"{name:>20}: {len(outputs) / seconds:8.1f} answers/s  "
                  f"({seconds:.2f} s)  verdicts as expected {agree}/{len(outputs)}  "
                  f"timeouts {verifier.n_timeouts - timeouts_before}  "
                  f"pre-check {verifier.n_too_complex - complex_before}")


if __name__ == "__main__":
    main()
