"""Bad input to the laws: clear errors (or warnings) naming the size, row or field."""

import numpy as np
import pandas as pd
import pytest

from rlscale.errors import DataError, LawError
from rlscale.laws import LawWarning, get_law, prepare_points


def table(sizes=(1e6, 4e6, 16e6), steps=range(0, 11), runs=1):
    rows = []
    for N in sizes:
        for run in range(runs):
            for step in steps:
                C = 6 * N * 1e4 * max(step, 1)
                k = 0.2 / (1 + 4e6 / N)
                rows.append({"N": N, "run": f"{N:g}-{run}", "step": step, "C": C, "D": 64 * step,
                             "L": min(1.0, 10 ** (0.1 + 0.02 * run - k * np.log10(C)) + 0.0)})
    return pd.DataFrame(rows)


def test_points_average_runs_drop_step0_and_weigh_sizes_equally():
    df = table(runs=2)
    df = df[~((df["N"] == 1e6) & (df["step"] > 5))]  # the smallest size has fewer points
    points = prepare_points(df, "C")
    assert 0 not in points.step
    assert set(points.n_runs) == {2} and (points.L_std > 0).all()
    totals = np.bincount(points.size_index, points.weight)
    np.testing.assert_allclose(totals, totals[0])
    assert points.weight.mean() == pytest.approx(1.0)
    assert prepare_points(df, "C", warmup=3).step.min() == 4
    assert list(prepare_points(df, "C", sizes=[4e6, 16e6]).sizes) == [4e6, 16e6]


def test_one_run_a_point_gives_the_points_the_averaging_gives():
    df = table().sample(frac=1.0, random_state=0)  # rows in any order
    points = prepare_points(df, "C", warmup=2)
    reference = (df[df["step"] > 2].groupby(["N", "step"]).agg(X=("C", "mean"), L=("L", "mean"))
                 .reset_index().sort_values(["N", "X"], kind="stable"))
    np.testing.assert_array_equal(points.N, reference["N"])
    np.testing.assert_array_equal(points.step, reference["step"])
    np.testing.assert_array_equal(points.X, reference["X"])
    np.testing.assert_array_equal(points.L, reference["L"])
    assert set(points.n_runs) == {1} and not points.L_std.any()


def test_too_few_sizes_for_the_papers_law():
    with pytest.raises(LawError, match="at least 3 model sizes"):
        get_law("loglinear_kn").fit(table(sizes=(1e6, 4e6)), x="C")


@pytest.mark.parametrize("bad", [1.2, 0.0, -0.1])
def test_loss_outside_unit_interval_names_row_and_size(bad):
    df = table()
    df.loc[17, "L"] = bad
    with pytest.raises(LawError, match=r"row 17: L=.* outside \(0, 1\] for size N=4M"):
        prepare_points(df, "C")


def test_nan_names_row_and_field():
    df = table()
    df.loc[5, "C"] = np.nan
    with pytest.raises(LawError, match="row 5: field 'C'"):
        prepare_points(df, "C")


def test_one_point_size_is_named():
    df = table()
    df = df[~((df["N"] == 16e6) & (df["step"] > 1))]
    with pytest.raises(LawError, match="N=16M .* has 1 point"):
        prepare_points(df, "C")


def test_missing_column_and_unknown_size():
    with pytest.raises(DataError, match="no column 'T'"):
        prepare_points(table(), "T")
    with pytest.raises(LawError, match="N=2M"):
        prepare_points(table(), "C", sizes=[2e6])


def test_flat_curve_warns_naming_the_size():
    df = table()
    df.loc[df["N"] == 4e6, "L"] = 0.5
    with pytest.warns(LawWarning, match="N=4M .* flat"):
        get_law("loglinear").fit(df, x="C")


def test_unfittable_size_for_per_size_sigmoid():
    df = table(steps=range(0, 4))
    with pytest.raises(LawError, match="needs at least 5 per size"):
        get_law("sigmoid").fit(df, x="C")
