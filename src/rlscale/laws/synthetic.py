"""Synthetic learning curves from a fitted law: for recovery tests, benchmarks and demos.

The resource axes follow the paper's recipe: D = step x prompts_per_step and C = 6 N T with a
constant number of tokens per step (the paper's compute definition, generation not counted).
Noise is independent Gaussian per run and step, with a standard deviation per size (the paper's
run-to-run spread); several runs per size are drawn so that averaging is exercised too.
`synthetic_ladders` draws instead the correlated structure `laws.noise` models (per-size offsets
and tilts, AR(1) noise), at scales `residual_scales` measures on real curves: many targets on
which a band's coverage can be checked (bench/band_coverage.py --synthetic).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import FittedLaw
from rlscale.units import training_flops

PROMPTS_PER_STEP = 512
# 4096 sequences x ~900 prompt+response tokens: matches the digitized Instruct C/D curves
# (C / (6 N D) is about 7.2k tokens per prompt there).
TOKENS_PER_STEP = 3.7e6


def recipe_axes(N: float, steps: np.ndarray, *, tokens_per_step: float = TOKENS_PER_STEP,
                prompts_per_step: int = PROMPTS_PER_STEP) -> dict[str, np.ndarray]:
    """Cumulative D, T and C after each step for a model of size N."""
    steps = np.asarray(steps, dtype=float)
    tokens = steps * tokens_per_step
    return {"D": steps * prompts_per_step, "T": tokens, "C": training_flops(N, tokens)}


def simulate_curves(fitted: FittedLaw, sizes, *, steps=range(1, 106), noise_std=0.0, runs: int = 1,
                    seed: int = 0, tokens_per_step: float = TOKENS_PER_STEP) -> pd.DataFrame:
    """A law table (N, run, step, C, D, T, L) drawn from `fitted` along the recipe's axes.

    noise_std: one standard deviation for all sizes, or one per size. L is clipped into (0, 1].
    """
    rng = np.random.default_rng(seed)
    sizes = [float(s) for s in sizes]
    stds = np.broadcast_to(np.asarray(noise_std, dtype=float), (len(sizes),))
    steps = np.asarray(list(steps), dtype=float)
    frames = []
    for size, std in zip(sizes, stds, strict=True):
        axes = recipe_axes(size, steps, tokens_per_step=tokens_per_step)
        with np.errstate(divide="ignore"):  # step 0 (X = 0) gives L = inf, clipped to 1 below
            clean = fitted.predict(size, axes[fitted.x])
        for run in range(runs):
            L = np.clip(clean + rng.normal(0.0, std, len(steps)), 1e-6, 1.0)
            frames.append(pd.DataFrame({"N": size, "run": f"N{size:g}-r{run}", "step": steps.astype(int),
                                        **axes, "L": L}))
    return pd.concat(frames, ignore_index=True)


def paper_law(reference: dict, *, family: str = "base", x: str = "C") -> FittedLaw:
    """The authors' full-data loglinear_kn fit from the paper's reference.json as a FittedLaw."""
    for entry in reference["full_data_fits_from_code"]:
        if entry["family"] == family and entry["x"] == x:
            E = {float(k): float(v) for k, v in entry["E"].items()}
            return FittedLaw(law="loglinear_kn", x=x, sizes=sorted(E),
                             params={"Kmax": float(entry["Kmax"]), "N0": float(entry["N0"]), "E": E},
                             options={"space": "linear", "loss": "linear", "e_form": "free"})
    raise LawError(f"reference has no full-data fit for family={family!r}, x={x!r}")


def residual_scales(table, fitted: FittedLaw) -> dict[str, float]:
    """The residual structure of `table` about `fitted`, as `laws.noise.ResidualModel` reads it:
    the RMS offset s_u and relative tilt s_w (tilt / k(N)) of the sizes' curves in log10 L, the
    median AR(1) rho over sizes and the sd of the innovations that remain."""
    from rlscale.laws.base import prepare_points
    from rlscale.laws.noise import ResidualModel

    frame = prepare_points(table, fitted.x).to_frame()
    N, X = frame["N"].to_numpy(float), frame[fitted.x].to_numpy(float)
    residual = np.log10(frame["L"].to_numpy(float)) - np.log10(fitted.predict(N, X))
    sizes = ResidualModel.fit(N, np.log10(X), residual).sizes
    tilts = [noise.v / float(fitted.k(size)) for size, noise in sizes.items()]
    return {"s_u": float(np.sqrt(np.mean([noise.u ** 2 for noise in sizes.values()]))),
            "s_w": float(np.sqrt(np.mean(np.square(tilts)))),
            "rho": float(np.median([noise.rho for noise in sizes.values()])),
            "sd": float(np.std(np.concatenate([noise.innovations for noise in sizes.values()])))}


def synthetic_ladders(fitted: FittedLaw, grid: pd.DataFrame, *, s_u: float, s_w: float,
                      rho: float, sd: float, ladders: int, seed: int = 0):
    """Yield `ladders` law tables (N, step, X, L) on `grid`'s (N, step, X) points: `fitted`'s
    curves, each size moved by its own offset u ~ N(0, s_u) and tilt w k(N) (w ~ N(0, s_w)) about
    its centre in log10 X, plus stationary AR(1) noise: the world `laws.noise` assumes, for
    checking that its bands cover what they claim over many targets. L is clipped into (0, 1]."""
    x = fitted.x
    rng = np.random.default_rng(seed)
    groups = [(float(size), g) for size, g in grid.groupby("N")]
    for _ in range(ladders):
        frames = []
        for size, g in groups:
            lx = np.log10(g[x].to_numpy())
            a = np.empty(len(g))
            a[0] = rng.normal(0.0, sd / np.sqrt(max(1.0 - rho * rho, 1e-6)))
            for t in range(1, len(g)):
                a[t] = rho * a[t - 1] + rng.normal(0.0, sd)
            u, w = rng.normal(0.0, s_u), rng.normal(0.0, s_w)
            log_l = np.log10(fitted.predict(size, g[x].to_numpy())) + u + \
                w * float(fitted.k(size)) * (lx - lx.mean()) + a
            frames.append(g[["N", "step", x]].assign(L=np.clip(10 ** log_l, 1e-6, 1.0)))
        yield pd.concat(frames, ignore_index=True)
