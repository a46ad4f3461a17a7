"""rlscale.data: problems, their loaders, the built-in arithmetic task, curriculum and reuse."""

from rlscale.data.arithmetic import (
    ARITHMETIC_CHARSET,
    ARITHMETIC_TIERS,
    DEFAULT_TIERS,
    Tier,
    arithmetic_problems,
    arithmetic_solution,
)
from rlscale.data.curriculum import (
    curriculum_order,
    reuse_schedule,
    reuse_subset,
    stratified_holdout,
)
from rlscale.data.loaders import load_problems, problem_from_record, save_problems_jsonl
from rlscale.data.problem import EASY_THRESHOLD, Problem, Prompt

__all__ = [
    "ARITHMETIC_CHARSET",
    "ARITHMETIC_TIERS",
    "DEFAULT_TIERS",
    "EASY_THRESHOLD",
    "Problem",
    "Prompt",
    "Tier",
    "arithmetic_problems",
    "arithmetic_solution",
    "curriculum_order",
    "load_problems",
    "problem_from_record",
    "reuse_schedule",
    "reuse_subset",
    "save_problems_jsonl",
    "stratified_holdout",
]
