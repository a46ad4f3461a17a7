import re

import numpy as np
import pandas as pd
import pytest

from rlscale.data import (
    Problem,
    curriculum_order,
    load_problems,
    reuse_schedule,
    reuse_subset,
    stratified_holdout,
)
from rlscale.errors import DataError

PAPER_TOTAL = 51_200  # the reuse experiment's data budget: the first 51,200 curriculum rows


def make_pool(rates) -> list[Problem]:
    return [Problem(f"p{i}", f"q{i}", "1", r) for i, r in enumerate(rates)]


def easy_fraction(problems) -> float:
    return sum(p.is_easy for p in problems) / len(problems)


def is_easy_to_hard(problems) -> bool:
    rates = [p.pass_rate for p in problems]
    return all(a >= b for a, b in zip(rates, rates[1:], strict=False))


def reuse_files(shared_data):
    found = []
    for path in sorted(shared_data.glob("guru_math/reuse_1_*_*.parquet")):
        tau, rows = map(int, re.fullmatch(r"reuse_1_(\d+)_(\d+)", path.stem).groups())
        found.append((tau, rows, path))
    assert found, "no reuse files"
    return found


def test_curriculum_order_matches_a_stable_sort():
    rng = np.random.default_rng(0)
    rates = [None if rng.random() < 0.1 else float(rng.integers(0, 5)) / 4 for _ in range(300)]
    problems = make_pool(rates)
    ordered = curriculum_order(problems)
    frame = pd.DataFrame({"rate": [np.nan if r is None else r for r in rates]})
    expected = frame.sort_values("rate", ascending=False, kind="stable", na_position="last").index
    assert [p.id for p in ordered] == [f"p{i}" for i in expected]
    assert curriculum_order(ordered) == ordered  # idempotent
    assert curriculum_order(list(reversed(problems)))[0].pass_rate == 1.0


def test_stratified_holdout_counts_and_determinism():
    rates = np.random.default_rng(1).uniform(0, 1, 2000).round(3)
    problems = make_pool(rates)
    train, holdout = stratified_holdout(problems, n_easy=250, n_hard=250, seed=7)
    assert sum(p.is_easy for p in holdout) == 250 and len(holdout) == 500
    assert len(train) == 1500
    assert {p.id for p in train}.isdisjoint(p.id for p in holdout)
    assert sorted(p.id for p in train + holdout) == sorted(p.id for p in problems)
    order = {p.id: i for i, p in enumerate(problems)}
    assert [order[p.id] for p in train] == sorted(order[p.id] for p in train)  # input order kept
    again = stratified_holdout(problems, n_easy=250, n_hard=250, seed=7)
    assert again == (train, holdout)
    assert stratified_holdout(problems, n_easy=250, n_hard=250, seed=8)[1] != holdout
    # the threshold decides easy vs hard
    _, strict = stratified_holdout(problems, n_easy=100, n_hard=0, seed=7, threshold=0.9)
    assert all(p.pass_rate >= 0.9 for p in strict)


def test_stratified_holdout_on_guru_files(shared_data):
    problems = load_problems(shared_data / "guru_math/holdout_500.parquet")
    problems += load_problems(shared_data / "guru_math/reuse_1_100_512.parquet")
    train, holdout = stratified_holdout(problems, n_easy=250, n_hard=250, seed=0)
    assert (len(holdout), sum(p.is_easy for p in holdout)) == (500, 250)
    assert len(train) == len(problems) - 500


def test_stratified_holdout_errors():
    problems = make_pool([0.9, 0.8, 0.1])
    with pytest.raises(DataError, match="n_easy"):
        stratified_holdout(problems, n_easy=3, n_hard=0, seed=0)
    with pytest.raises(DataError, match="n_hard"):
        stratified_holdout(problems, n_easy=0, n_hard=2, seed=0)
    with pytest.raises(DataError) as error:
        stratified_holdout(make_pool([0.9, None]), n_easy=1, n_hard=0, seed=0)
    assert (error.value.row, error.value.field) == (1, "pass_rate")


def test_reuse_files_are_in_curriculum_order_and_nested(shared_data):
    subsets = {}
    for _, rows, path in reuse_files(shared_data):
        problems = load_problems(path)
        assert len(problems) == rows
        assert curriculum_order(problems) == problems
        assert is_easy_to_hard(problems)
        subsets[rows] = {p.id for p in problems}
    sizes = sorted(subsets)
    assert all(subsets[a] <= subsets[b] for a, b in zip(sizes, sizes[1:], strict=False))


def test_reuse_subset_matches_the_papers_files(shared_data):
    files = reuse_files(shared_data)
    # a synthetic stand-in for the first 51,200 curriculum rows, with the easy share of the
    # largest file (the best estimate of the pool's; the files agree with each other to 1/rows)
    largest = load_problems(max(files, key=lambda f: f[1])[2])
    n_easy = round(easy_fraction(largest) * PAPER_TOTAL)
    rng = np.random.default_rng(0)
    rates = np.concatenate([rng.uniform(0.3, 1, n_easy), rng.uniform(0, 0.3, PAPER_TOTAL - n_easy)])
    pool = make_pool(rng.permutation(rates).tolist())
    assert 0.2 < n_easy / PAPER_TOTAL < 0.25
    previous = set()
    for tau, rows, path in sorted(files, reverse=True):  # growing subsets
        subset = reuse_subset(pool, total=PAPER_TOTAL, tau=tau, seed=0)
        assert len(subset) == rows == PAPER_TOTAL // tau
        paper = easy_fraction(load_problems(path))
        assert abs(easy_fraction(subset) - paper) <= 1 / rows, (tau, easy_fraction(subset), paper)
        assert is_easy_to_hard(subset)
        ids = {p.id for p in subset}
        assert len(ids) == rows and previous <= ids  # nested, like the paper's
        previous = ids


def test_reuse_subset_draws_from_the_first_total_curriculum_problems():
    rates = np.linspace(1, 0, 400)
    problems = make_pool(np.random.default_rng(2).permutation(rates).tolist())
    subset = reuse_subset(problems, total=200, tau=4, seed=0)
    first = {p.id for p in curriculum_order(problems)[:200]}
    assert len(subset) == 50 and {p.id for p in subset} <= first
    assert easy_fraction(subset) == easy_fraction(curriculum_order(problems)[:200])
    assert reuse_subset(problems, total=200, tau=4, seed=0) == subset
    assert reuse_subset(problems, total=200, tau=4, seed=1) != subset


def test_reuse_schedule_curriculum_and_shuffle():
    problems = make_pool(np.random.default_rng(3).uniform(0, 1, 500).tolist())
    subset = reuse_subset(problems, total=400, tau=8, seed=5)
    schedule = reuse_schedule(problems, total=400, tau=8, seed=5)
    assert len(schedule) == 400
    epochs = [schedule[i : i + 50] for i in range(0, 400, 50)]
    assert all(epoch == subset for epoch in epochs)
    assert all(is_easy_to_hard(epoch) for epoch in epochs)

    shuffled = reuse_schedule(problems, total=400, tau=8, seed=5, order="shuffle")
    epochs = [shuffled[i : i + 50] for i in range(0, 400, 50)]
    assert all(sorted(p.id for p in e) == sorted(p.id for p in subset) for e in epochs)
    assert len({tuple(p.id for p in e) for e in epochs}) == 8  # each epoch reshuffled
    assert shuffled == reuse_schedule(problems, total=400, tau=8, seed=5, order="shuffle")

    # tau = 1 is plain curriculum training on the first `total` problems
    assert reuse_schedule(problems, total=300, tau=1, seed=0) == curriculum_order(problems)[:300]


def test_reuse_keeps_unknown_difficulty_as_its_own_stratum():
    problems = make_pool([0.9] * 20 + [None] * 20 + [0.1] * 60)
    subset = reuse_subset(problems, total=100, tau=10, seed=0)
    assert [p.pass_rate for p in subset] == [0.9, 0.9] + [0.1] * 6 + [None, None]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"total": 100, "tau": 3}, "tau"),
        ({"total": 100, "tau": 0}, "tau"),
        ({"total": 0, "tau": 1}, "total"),
        ({"total": 1000, "tau": 10}, "total"),
        ({"total": 100, "tau": 10, "order": "random"}, "order"),
    ],
)
def test_reuse_errors(kwargs, field):
    problems = make_pool([0.5] * 200)
    with pytest.raises(DataError) as error:
        reuse_schedule(problems, seed=0, **kwargs)
    assert error.value.field == field
