"""Rewards: extract the final boxed answer and verify it against the gold answer.

`extract_boxed` and the fast path (`fast_match`) run in process; math-verify runs in killable worker
processes behind `Verifier` (see verifier.py). Model text is only ever parsed, never evaluated.
"""

from rlscale.reward.extract import extract_boxed, fast_match, normalize_answer, parse_number
from rlscale.reward.verifier import Verdict, Verifier, VerifierError, verify

__all__ = [
    "Verdict",
    "Verifier",
    "VerifierError",
    "extract_boxed",
    "fast_match",
    "normalize_answer",
    "parse_number",
    "verify",
]
