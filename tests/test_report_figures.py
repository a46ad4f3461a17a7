"""Figure functions on small hand-made tables: what is drawn, solid vs dashed, absent data."""

import numpy as np
import pandas as pd
import pytest

from rlscale.report import figures as F

SIZES = (1e6, 1e7, 1e8)
K = {1e6: 0.05, 1e7: 0.10, 1e8: 0.15}


class PowerLaw:
    """A stand-in fitted law: L = 2 * X^-k(N)."""

    law = "power"

    def predict(self, N, X):
        N, X = np.broadcast_arrays(np.asarray(N, float), np.asarray(X, float))
        return 2.0 * X ** -np.vectorize(K.get)(N)


def points():
    rows = [{"N": N, "run": f"r{N:g}", "step": s, "C": 1e10 * N / 1e6 * s, "D": 16 * s,
             "L": float(PowerLaw().predict(N, 1e10 * N / 1e6 * s))}
            for N in SIZES for s in range(1, 11)]
    return pd.DataFrame(rows)


def test_fitted_lines_solid_over_the_data_and_dashed_beyond():
    fig = F.loss_curves(points(), PowerLaw(), x="C", fitted_sizes=SIZES[:2])
    lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata()) > 1]
    solid = [line for line in lines if line.get_linestyle() == "-"]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    # Two fitted sizes: solid over their data; the held-out third size is dashed throughout.
    assert len(solid) == 2 and len(dashed) == 4
    data = points()
    for line in solid:
        x = line.get_xdata()
        size_range = [g["C"].agg(["min", "max"]).tolist() for _, g in data.groupby("N")]
        assert [pytest.approx(x[0]), pytest.approx(x[-1])] in size_range
    assert fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"


def test_k_points_are_the_free_estimates_not_the_law():
    free = pd.DataFrame({"N": SIZES, "k": [0.07, 0.09, 0.2], "k_lo": [0.06, 0.08, 0.18],
                         "k_hi": [0.08, 0.10, 0.22]})
    band = pd.DataFrame({"N": [5e5, 1e9], "lo": [0.0, 0.1], "hi": [0.1, 0.3]})
    fig = F.learning_efficiency(free, lambda N: 0.2 / (1 + 1e7 / np.asarray(N)), band)
    markers = [line for line in fig.axes[0].get_lines() if line.get_marker() == "o"]
    assert sorted(float(m.get_ydata()[0]) for m in markers) == [0.07, 0.09, 0.2]
    assert fig.axes[0].collections  # the bootstrap band and error bars


def test_absent_data_raises_no_data_with_the_reason():
    empty = pd.DataFrame(columns=["tau", "step", "L"])
    with pytest.raises(F.NoData, match="tau"):
        F.reuse_curves(empty)
    with pytest.raises(F.NoData, match="response_len"):
        F.response_length(pd.DataFrame({"N": [1e6], "D": [16], "step": [1]}))


def test_reuse_and_group_figures_draw_one_curve_per_value():
    base = points()[lambda d: d["N"] == 1e7]
    reuse = pd.concat([base.assign(tau=t, run=f"t{t}", L=base["L"] + 0.01 * t) for t in (1, 5)])
    assert len(F.reuse_curves(reuse).axes[0].get_lines()) == 2
    group = pd.concat([base.assign(G=g, run=f"g{g}") for g in (4, 8, 16)])
    assert len(F.group_size(group, x="D").axes[0].get_lines()) == 3


def test_size_colours_fixed_by_rank():
    assert F.size_colours([1e8, 1e6]) == F.size_colours([1e6, 1e8])
    colours = F.size_colours(SIZES)
    assert len(set(colours.values())) == 3


@pytest.mark.parametrize(("lo", "hi", "most"), [(4e11, 5e12, 5), (0.15, 0.35, 9)])
def test_log_ticks_label_a_decade_without_crowding(lo, hi, most):
    """Nine labels a decade fit plain numbers (0.2, 0.3); e-notation ones (6e11) would overlap."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([lo, hi], [1, 2])
    ax.set_xscale("log")
    F.log_ticks(ax, "x")
    shown = [t for t in ax.xaxis.get_major_locator().tick_values(lo, hi) if lo <= t <= hi]
    assert 2 <= len(shown) <= most
    plt.close(fig)
