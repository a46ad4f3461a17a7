"""Verification: equivalent forms pass, known traps fail, real ground truths hold."""

import re

import pyarrow.parquet as pq
import pytest

from rlscale.reward import Verifier, verify


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=1, timeout=10.0) as v:
        yield v


EQUIVALENT = [  # (model's boxed answer, gold)
    (r"\frac{1}{2}", "0.5"),
    (r"\dfrac12", r"\frac{1}{2}"),
    ("0.5", r"\frac{1}{2}"),
    ("1/2", r"\frac{1}{2}"),
    (r"\frac{2}{4}", "1/2"),
    (r"x + 1", "1+x"),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
    (r"(-\infty, 2]", r"(-\infty,2]"),
    (r"[1, 5)", r"[1,5)"),
    (r"\text{Evelyn}", "Evelyn"),
    (r"\text{(C)}", "C"),
    (r"90^\circ", "90"),
    ("90", r"90^\circ"),
    (r"3\sqrt{13}", r"\sqrt{117}"),
    ("-2, 1", "1,-2"),
    ("x=5", "5"),
    (r"\\frac{3}{4}", "0.75"),
]

NOT_EQUIVALENT = [
    ("1+1/e", "1-1/e"),
    ("1/2006!", "1/2004!"),
    ("n=1,2,3", "n=2,3,4"),
    ("[1, 5]", "[1,5)"),
    ("13", "12"),
    (r"\frac{1}{3}", "0.33"),
    ("x - 1", "x+1"),
]


def test_equivalent_forms_pass(verifier):
    verdicts = verifier.verify_batch([rf"So \boxed{{{a}}}." for a, _ in EQUIVALENT],
                                     [g for _, g in EQUIVALENT])
    failed = [pair for pair, v in zip(EQUIVALENT, verdicts, strict=True) if not v.correct]
    assert failed == []
    assert [v.extracted for v in verdicts] == [a for a, _ in EQUIVALENT]


def test_non_equivalences_fail(verifier):
    verdicts = verifier.verify_batch([rf"\boxed{{{a}}}" for a, _ in NOT_EQUIVALENT],
                                     [g for _, g in NOT_EQUIVALENT])
    accepted = [pair for pair, v in zip(NOT_EQUIVALENT, verdicts, strict=True) if v.correct]
    assert accepted == []
    assert not any(v.timed_out for v in verdicts)


def test_no_box_is_wrong_and_extracted_is_none(verifier):
    (verdict,) = verifier.verify_batch(["the answer is 12"], ["12"])
    assert (verdict.correct, verdict.extracted, verdict.timed_out) == (False, None, False)


def test_integer_golds_never_reach_a_worker():
    with Verifier(use_math_verify=False) as cheap:
        verdicts = cheap.verify_batch([r"\boxed{12}", r"\boxed{13}", r"\boxed{ 12. }", "12"],
                                      [12, "12", "12", 12])
        assert [v.correct for v in verdicts] == [True, False, True, False]
        assert cheap._workers == []


def test_verify_convenience():
    assert verify(r"... \boxed{\dfrac{1}{2}}", "0.5").correct
    assert not verify(r"... \boxed{1+1/e}", "1-1/e").correct


def test_batch_length_mismatch(verifier):
    with pytest.raises(ValueError, match="2 outputs but 1 golds"):
        verifier.verify_batch(["a", "b"], ["a"])


# --- real ground truths rewritten in other forms ---------------------------------------------

def _ground_truths(path) -> list[str]:
    rows = pq.read_table(path, columns=["reward_model"]).column("reward_model").to_pylist()
    return [row["ground_truth"] for row in rows]


def _rewrites(gold: str) -> list[str]:
    """Equivalent spellings of `gold`: \\dfrac, spacing, $...$, \\left/\\right, numeric forms."""
    forms = [gold.replace(r"\frac", r"\dfrac"), re.sub(r"\s*([,+=])\s*", r" \1 ", gold),
             f"${gold}$"]
    brackets_balance = gold.count("(") + gold.count("[") == gold.count(")") + gold.count("]")
    if brackets_balance and re.search(r"[(\[]", gold) and r"\left" not in gold:
        forms.append(re.sub(r"([(\[])", r"\\left\1 ", re.sub(r"([)\]])", r" \\right\1", gold)))
    if re.fullmatch(r"-?\d+", gold):  # 42 -> \frac{84}{2}: only math-verify can tell
        forms.append(rf"\frac{{{2 * int(gold)}}}{{2}}")
    if m := re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", gold):
        forms.append(f"{m[1]}{m[2]}/{m[3]}")
    return forms


def _perturbed(gold: str) -> str | None:
    """A wrong answer: the first digit changed (None when there is no digit)."""
    m = re.search(r"\d", gold)
    return gold[:m.start()] + str((int(m[0]) + 1) % 10) + gold[m.end():] if m else None


@pytest.mark.parametrize("parquet",
                         ["eval/math__math_500.parquet", "guru_math/holdout_500.parquet"])
def test_real_ground_truths_in_other_forms(verifier, shared_data, parquet):
    golds = _ground_truths(shared_data / parquet)
    pairs = [(form, gold) for gold in golds for form in _rewrites(gold)]
    assert len(pairs) > 3 * len(golds)
    verdicts = verifier.verify_batch([rf"The answer is $\boxed{{{f}}}$." for f, _ in pairs],
                                     [g for _, g in pairs])
    failed = [pair for pair, v in zip(pairs, verdicts, strict=True) if not v.correct]
    assert failed == []

    wrong = [(_perturbed(g), g) for g in golds if _perturbed(g)]
    verdicts = verifier.verify_batch([rf"\boxed{{{w}}}" for w, _ in wrong], [g for _, g in wrong])
    accepted = [pair for pair, v in zip(wrong, verdicts, strict=True) if v.correct]
    assert accepted == []
