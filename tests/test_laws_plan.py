"""Planning with a fitted law, and data-reuse advice."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from rlscale.errors import DataError, LawError
from rlscale.laws import FittedLaw
from rlscale.laws.bootstrap import bootstrap
from rlscale.laws.plan import optimal_size, plan, reuse_advice
from rlscale.laws.synthetic import simulate_curves

SIZES = [5e8, 1.5e9, 3e9, 7e9, 14e9, 32e9, 72e9]
PHI = 6 * 8000.0  # 8000 tokens per prompt (prompt + its rollouts)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def compute_law() -> FittedLaw:
    """A C-law whose intercept grows fast enough with N that, at a fixed compute, the loss is
    lowest at an interior size (around 1e10): too small learns slowly, too large sees too little."""
    return FittedLaw(law="loglinear_kn", x="C", params={"Kmax": 0.14, "N0": 5e9, "Emax": 3.0, "N1": 3e10},
                     options={"e_form": "saturating"}, sizes=SIZES)


def data_law() -> FittedLaw:
    return FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "Emax": 0.2, "N1": 5e9},
                     options={"e_form": "saturating"}, sizes=SIZES)


def test_compute_budget_picks_the_size_a_brute_force_search_picks():
    law = compute_law()
    result = plan(law, "compute", 1e21, tokens_per_prompt=8000)
    losses = [float(law.predict(N, 1e21)) for N in SIZES]
    assert SIZES[int(np.argmin(losses))] == result.best.N
    assert SIZES[0] < result.best.N < SIZES[-1]  # the constructed case has an interior optimum
    for option in result.options:
        assert option.C == 1e21
        assert pytest.approx(1e21 / (option.N * PHI)) == option.D
        assert option.steps == pytest.approx(option.D / 512)
    # the continuous optimum agrees with a dense grid search
    grid = np.logspace(np.log10(SIZES[0]), np.log10(SIZES[-1]), 20001)
    dense = grid[np.argmin(law.predict(grid, np.full_like(grid, 1e21)))]
    assert pytest.approx(dense, rel=2e-3) == result.continuous.N
    assert result.continuous.L <= result.best.L


def test_data_budget_converts_to_compute_and_steps():
    result = plan(data_law(), "data", 51200, phi=PHI, prompts_per_step=512)
    assert SIZES[-1] == result.best.N  # per prompt, bigger always learns more under this law
    for option in result.options:
        assert option.steps == pytest.approx(100)
        assert pytest.approx(option.N * 51200 * PHI) == option.C
        assert pytest.approx(float(data_law().predict(option.N, 51200))) == option.L


def test_target_loss_finds_the_cheapest_size_that_reaches_it():
    law = compute_law()
    result = plan(law, "target_loss", 0.1, tokens_per_prompt=8000)
    reached = [o for o in result.options if o.C is not None]
    for option in reached:  # each size's compute gives the target loss back
        assert float(law.predict(option.N, option.C)) == pytest.approx(0.1, rel=1e-6)
    assert min(o.C for o in reached) == result.best.C
    unreachable = [o for o in result.options if o.C is None]
    assert unreachable and all(float(law.predict(o.N, 1e40)) > 0.1 for o in unreachable)
    # continuous: no size in the range needs less compute (grid check)
    grid = np.logspace(np.log10(SIZES[0]), np.log10(SIZES[-1]), 301)

    def needed(N):
        best = plan(law, "target_loss", 0.1, sizes=[N], tokens_per_prompt=8000, continuous=False).best
        return best.C if best is not None else math.inf

    cheapest = min(needed(N) for N in grid)
    assert cheapest * (1 + 1e-6) >= result.continuous.C
    assert pytest.approx(cheapest, rel=0.02) == result.continuous.C


def test_bands_from_a_bootstrap_bracket_the_prediction():
    table = simulate_curves(data_law(), SIZES, steps=range(1, 41), noise_std=0.005, seed=2)
    boot = bootstrap(table, "loglinear_kn:e_form=saturating", "D", n=30, seed=0)
    result = plan(boot.fitted, "data", 30000, phi=PHI, bootstrap=boot)
    for option in result.options:
        assert option.L_lo <= option.L <= option.L_hi
    target = plan(boot.fitted, "target_loss", 0.5, phi=PHI, bootstrap=boot)
    assert target.best.C_lo <= target.best.C <= target.best.C_hi


def test_free_intercepts_plan_only_the_fitted_sizes_and_phi_is_needed_to_convert():
    law = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "E": {7e9: 0.1, 14e9: 0.12}},
                    options={"e_form": "free"}, sizes=[7e9, 14e9])
    result = plan(law, "data", 1e4)
    assert result.continuous is None
    assert any("no continuous optimum" in note for note in result.notes)
    assert result.best.C is None  # no phi: compute unknown, the loss is still planned
    assert any("phi" in note for note in result.notes)
    with pytest.raises(LawError, match="phi"):
        plan(law, "compute", 1e20)
    with pytest.raises(LawError, match="goal"):
        plan(law, "money", 1.0)


def test_optimal_size_finds_a_known_minimum():
    assert optimal_size(lambda N: (math.log10(N) - 9.7) ** 2, 1e8, 1e11) == pytest.approx(10**9.7, rel=1e-4)


def test_reuse_advice_on_the_paper_tau_experiment(shared_data):
    table = pd.read_csv(shared_data / "paper" / "digitized_tau_base.csv")
    advice = reuse_advice(table)
    # the paper: no significant degradation up to tau = 25; worse at 100
    assert advice.recommended_tau == 25
    verdict = advice.per_tau.set_index("tau")["worse"]
    assert not verdict[[1.0, 2.0, 5.0, 20.0, 25.0]].any()
    assert verdict[100.0]
    assert "Welch" in advice.test


def test_reuse_advice_uses_runs_when_there_are_several():
    rng = np.random.default_rng(0)
    rows = [{"tau": tau, "run": f"r{r}", "step": step, "L": 0.7 + (0.03 if tau >= 50 else 0.0)
             + rng.normal(0, 0.01)}
            for tau in (1, 10, 50) for r in range(3) for step in range(1, 51)]
    advice = reuse_advice(pd.DataFrame(rows))
    assert advice.recommended_tau == 10
    assert "runs' final losses" in advice.test
    assert advice.per_tau.set_index("tau").loc[50.0, "n"] == 3
    with pytest.raises(DataError, match="tau"):
        reuse_advice(pd.DataFrame(rows).query("tau != 1"))


def test_a_compute_budget_on_a_data_law_converts_through_phi():
    by_compute = plan(data_law(), "compute", 1e20, phi=PHI, continuous=False)
    for option in by_compute.options:
        same = plan(data_law(), "data", 1e20 / (option.N * PHI), sizes=[option.N], phi=PHI,
                    continuous=False).best
        assert pytest.approx(same.L, rel=1e-12) == option.L
        assert pytest.approx(1e20 / (6 * option.N)) == option.T


# --- the frontier --------------------------------------------------------------------------------

def hand_loss(N, C, Kmax=0.14, N0=5e9, Emax=3.0, N1=3e10):
    """compute_law by hand: log10 L = -k(N) log10 C + E(N), k = Kmax/(1 + N0/N), E = Emax N/(N + N1)."""
    return 10.0 ** (-Kmax / (1 + N0 / N) * math.log10(C) + Emax * N / (N + N1))


def test_frontier_optimum_is_the_argmin_at_every_budget():
    from rlscale.laws.plan import frontier

    budgets = np.logspace(15, 27, 25)
    df = frontier(compute_law(), budgets, tokens_per_prompt=8000)
    assert len(df) == len(budgets) * len(SIZES)
    for budget, rows in df.groupby("budget"):
        hand = {N: hand_loss(N, budget) for N in SIZES}
        inside = {N: L for N, L in hand.items() if 0 < L < 1}
        for row in rows.itertuples():
            if row.N in inside:
                assert row.in_range and pytest.approx(inside[row.N], rel=1e-9) == row.L
                assert pytest.approx(budget / (row.N * PHI)) == row.D
            else:  # outside (0, 1): marked, not extrapolated
                assert not row.in_range and math.isnan(row.L)
        best = min(inside, key=inside.get)
        assert (rows["best_N"] == best).all()
        assert rows.loc[rows["optimal"], "N"].tolist() == [best]
        # the continuous optimum: a dense grid of the hand formula agrees
        grid = np.logspace(np.log10(SIZES[0]), np.log10(SIZES[-1]), 4001)
        dense = grid[np.argmin([hand_loss(N, budget) for N in grid])]
        n_opt = rows["N_opt"].iloc[0]
        assert pytest.approx(dense, rel=3e-3) == n_opt
        assert rows["L_opt"].iloc[0] <= inside[best] * (1 + 1e-12)
    assert any("72B" in note and "outside (0, 1)" in note for note in df.attrs["notes"])


def test_the_optimum_moves_to_larger_sizes_as_the_budget_grows():
    """k(N) grows with N, so at more compute the steeper (larger) sizes win: the argmin of
    E(N) - k(N) log10 C cannot move to a smaller N as C grows."""
    from rlscale.laws.plan import frontier

    df = frontier(compute_law(), np.logspace(15, 27, 25), tokens_per_prompt=8000)
    per_budget = df.drop_duplicates("budget")
    assert (np.diff(per_budget["best_N"]) >= 0).all()
    assert per_budget["best_N"].iloc[0] < per_budget["best_N"].iloc[-1]  # 7B -> 14B here
    assert (np.diff(per_budget["N_opt"]) > 0).all()
    assert (np.diff(per_budget["best_L"]) < 0).all()  # more compute, lower loss


def test_frontier_bands_bracket_the_prediction_and_widen_beyond_the_data():
    from dataclasses import replace

    from rlscale.laws.plan import budget_grid, frontier

    table = simulate_curves(data_law(), SIZES, steps=range(1, 41), noise_std=0.005, seed=2)
    boot = bootstrap(table, "loglinear_kn:e_form=saturating", "D", n=20, seed=0)
    grid = budget_grid(boot.fitted, kind="data", bootstrap=boot, phi=PHI)
    assert grid[0] < table["D"].min() and grid[-1] > table["D"].max()  # around the data
    df = frontier(boot.fitted, grid, bootstrap=boot, phi=PHI, kind="data")
    assert df.attrs["level"] == boot.level
    inside = df[df["in_range"]]
    assert (inside["L_lo"] <= inside["L"]).all() and (inside["L"] <= inside["L_hi"]).all()
    # a lower level: the same replicates, a narrower percentile interval, nested inside
    narrow = frontier(boot.fitted, grid, bootstrap=replace(boot, level=0.5), phi=PHI, kind="data")
    assert (narrow["L_lo"] >= df["L_lo"] - 1e-15).all() and (narrow["L_hi"] <= df["L_hi"] + 1e-15).all()
    # the slope's uncertainty grows with the distance in log D: 100x past the data is wider
    last = table["D"].max()
    far = frontier(boot.fitted, [last / 4, last * 100], bootstrap=boot, phi=PHI, kind="data")
    width = np.log10(far["L_hi"] / far["L_lo"]).to_numpy().reshape(2, -1)  # budgets x sizes
    assert (width[1] > width[0]).all()


def test_frontier_out_of_range_budgets_and_fitted_size_laws():
    from rlscale.laws.plan import frontier

    with pytest.raises(LawError, match="outside the range the law describes"):
        frontier(compute_law(), [1e2, 1e3], tokens_per_prompt=8000)
    with pytest.raises(LawError, match="frontier kind"):
        frontier(compute_law(), [1e21], kind="money")
    with pytest.raises(LawError, match="phi"):  # a C-law on prompts needs phi
        frontier(compute_law(), [1e4], kind="data")
    law = FittedLaw(law="loglinear_kn", x="D", params={"Kmax": 0.14, "N0": 5e9, "E": {7e9: 0.1, 14e9: 0.12}},
                    options={"e_form": "free"}, sizes=[7e9, 14e9])
    df = frontier(law, [1e3, 1e4], kind="data")
    assert df["N_opt"].isna().all() and df["C"].isna().all()
    assert any("no continuous optimum" in note for note in df.attrs["notes"])
    assert any("phi" in note for note in df.attrs["notes"])


def test_plan_from_files_adds_the_frontier_only_when_asked(tmp_path):
    import json

    from rlscale.laws.plan import plan_from_files

    path = tmp_path / "fit.json"
    compute_law().to_json(path)
    plain = plan_from_files(path, "compute", 1e21, tokens_per_prompt=8000)
    assert plain.frontier is None and "frontier" not in plain.to_dict()
    assert plain.to_dict() == plan(compute_law(), "compute", 1e21, tokens_per_prompt=8000).to_dict()
    result = plan_from_files(path, "compute", 1e21, tokens_per_prompt=8000, with_frontier=True)
    budgets = result.frontier["budget"]
    assert budgets.min() == pytest.approx(1e19) and budgets.max() == pytest.approx(1e23)
    report = json.loads(json.dumps(result.to_dict()))  # plain JSON: NaN -> null, no numpy types
    assert report["frontier_kind"] == "compute" and len(report["frontier"]) == len(result.frontier)
    at_budget = [r for r in report["frontier"] if r["optimal"]]
    assert {r["best_N"] for r in at_budget} <= set(SIZES)
    with pytest.raises(LawError, match="LOW,HIGH"):
        plan_from_files(path, "compute", 1e21, tokens_per_prompt=8000, budget_range=(1e22, 1e20))
    with pytest.raises(LawError, match="--bootstrap needs --data"):
        plan_from_files(path, "compute", 1e21, bootstrap_n=5)
