"""Curriculum order, the stratified hold-out split and data reuse (the paper's tau experiment).

The paper trains on problems ordered easy -> hard by a reference model's pass rate, without
shuffling. Its reuse experiment fixes the total data D_total (prompts consumed) and trains on a
subset of D_total / tau problems repeated tau times; the subset keeps the easy/hard mix of the first
D_total curriculum problems, and every epoch runs easy -> hard again.
"""

from collections.abc import Sequence

import numpy as np

from rlscale.data.problem import EASY_THRESHOLD, Problem
from rlscale.errors import DataError

ORDERS = ("curriculum", "shuffle")


def curriculum_order(problems: Sequence[Problem]) -> list[Problem]:
    """Easy -> hard: pass rate descending; ties keep their input order; unknown pass rates last."""
    return sorted(problems, key=lambda p: (p.pass_rate is None, -(p.pass_rate or 0.0)))


def stratified_holdout(
    problems: Sequence[Problem],
    *,
    n_easy: int,
    n_hard: int,
    seed: int,
    threshold: float = EASY_THRESHOLD,
) -> tuple[list[Problem], list[Problem]]:
    """Split off a hold-out set of `n_easy` easy (pass rate >= threshold) and `n_hard` hard problems.

    Returns (train, holdout), both in the input order; every problem is in exactly one of them.
    """
    unknown = [i for i, p in enumerate(problems) if p.pass_rate is None]
    if unknown:
        raise DataError(
            f"problem {problems[unknown[0]].id!r} has no pass rate ({len(unknown)} such): "
            "the easy/hard split needs one for every problem",
            row=unknown[0],
            field="pass_rate",
        )
    easy = [i for i, p in enumerate(problems) if p.pass_rate >= threshold]
    hard = [i for i, p in enumerate(problems) if p.pass_rate < threshold]
    for name, wanted, pool in (("n_easy", n_easy, easy), ("n_hard", n_hard, hard)):
        if not 0 <= wanted <= len(pool):
            raise DataError(f"asked for {wanted} problems but there are {len(pool)}", field=name)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(easy, n_easy, replace=False).tolist())
    chosen |= set(rng.choice(hard, n_hard, replace=False).tolist())
    train = [p for i, p in enumerate(problems) if i not in chosen]
    holdout = [p for i, p in enumerate(problems) if i in chosen]
    return train, holdout


def reuse_subset(
    problems: Sequence[Problem],
    *,
    total: int,
    tau: int,
    seed: int,
    threshold: float = EASY_THRESHOLD,
) -> list[Problem]:
    """`total / tau` problems drawn from the first `total` curriculum problems, in curriculum order.

    The draw is stratified: the easy, hard and unknown-difficulty shares of the subset match those
    of the first `total` problems (largest-remainder rounding, so each share is within
    1 / subset size). With easy and hard problems only (every pass rate known), the subsets of
    different tau for one seed are nested, like the paper's.
    """
    _check_budget(problems, total=total, tau=tau)
    pool = curriculum_order(problems)[:total]
    size = total // tau
    strata: dict[bool | None, list[int]] = {True: [], False: [], None: []}
    for i, p in enumerate(pool):
        strata[None if p.pass_rate is None else p.pass_rate >= threshold].append(i)
    quotas = _largest_remainder({k: len(v) for k, v in strata.items()}, size)
    rng = np.random.default_rng(seed)
    chosen = []
    for key, members in strata.items():
        # a permutation of the whole stratum, cut at the quota: smaller subsets nest in larger ones
        chosen += [members[j] for j in rng.permutation(len(members))[: quotas[key]]]
    return [pool[i] for i in sorted(chosen)]


def reuse_schedule(
    problems: Sequence[Problem],
    *,
    total: int,
    tau: int,
    seed: int,
    order: str = "curriculum",
    threshold: float = EASY_THRESHOLD,
) -> list[Problem]:
    """The `total` problems a trainer consumes: `reuse_subset` repeated `tau` times.

    order="curriculum" runs every epoch easy -> hard (the paper's protocol); order="shuffle"
    reshuffles the subset for each epoch (seeded). tau=1 with "curriculum" is plain curriculum
    training on the first `total` problems.
    """
    if order not in ORDERS:
        raise DataError(f"order must be one of {ORDERS}, got {order!r}", field="order")
    subset = reuse_subset(problems, total=total, tau=tau, seed=seed, threshold=threshold)
    if order == "curriculum":
        return subset * tau
    rng = np.random.default_rng([seed, 1])  # a stream apart from the subset draw's
    return [subset[i] for _ in range(tau) for i in rng.permutation(len(subset))]


def _check_budget(problems: Sequence[Problem], *, total: int, tau: int) -> None:
    if tau < 1:
        raise DataError(f"tau must be >= 1, got {tau}", field="tau")
    if total < 1:
        raise DataError(f"total must be >= 1, got {total}", field="total")
    if total % tau:
        raise DataError(f"tau={tau} does not divide total={total}", field="tau")
    if len(problems) < total:
        raise DataError(
            f"total={total} needs at least {total} problems to draw from, got {len(problems)}",
            field="total",
        )


def _largest_remainder(counts: dict, size: int) -> dict:
    """Quotas summing to `size`, proportional to `counts`: each the floor of its exact share or one
    more (largest remainders first; exact integer arithmetic so no float rounding decides)."""
    total = sum(counts.values())
    quotas = {k: c * size // total for k, c in counts.items()}
    by_remainder = sorted(counts, key=lambda k: counts[k] * size % total, reverse=True)
    for k in by_remainder[: size - sum(quotas.values())]:
        quotas[k] += 1
    return quotas
