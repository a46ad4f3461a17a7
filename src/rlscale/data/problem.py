"""The Problem record: one verifiable question, from any source."""

from dataclasses import dataclass, field
from typing import Any

Prompt = str | list[dict[str, str]]  # plain text, or chat messages [{"role": ..., "content": ...}]


@dataclass(frozen=True)
class Problem:
    """One problem with a verifiable answer.

    pass_rate is the difficulty measure used for the curriculum and the easy/hard split: a
    reference model's pass rate in [0, 1] (higher = easier). Real data carries it (guru's
    `qwen2.5_7b_pass_rate`); the built-in task sets a proxy from its difficulty tier. None if unknown.

    solution is a canonical correct response (the full text a model would write, ending in the
    boxed answer), when the source has one: the built-in task's worked solution. Evaluation can
    then compute the probability of that response exactly (`rl.evaluate`, estimator "canonical").
    """

    id: str
    prompt: Prompt
    answer: str
    pass_rate: float | None = None
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    solution: str | None = None

    @property
    def is_easy(self) -> bool:
        """The paper's stratification: easy if the reference pass rate is >= 0.3."""
        return self.pass_rate is not None and self.pass_rate >= EASY_THRESHOLD

    def prompt_text(self) -> str:
        """The prompt as one string (chat messages joined by their content), for text-only models."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(m.get("content", "") for m in self.prompt)


EASY_THRESHOLD = 0.3
