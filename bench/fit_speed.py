"""Benchmark: our fit of the paper's law against CMA-ES with the authors' settings.

    python bench/fit_speed.py [--data CSV] [--x C] [--bootstrap 1000]

Data: the digitized Qwen2.5-Instruct curves (7 sizes x ~101 points, from step 5) when
../shared/data/paper is there, else curves drawn from the paper's base-C full-data fit.
Both fits minimise the same objective: the mean over sizes of each size's MSE of linear L.
CMA-ES, as the authors ran it: parameters Kmax, N0 and the 7 intercepts, each mapped linearly
from its bounds onto [0, 1]; sigma0 0.3, popsize 20, 5 independent restarts, best kept.
Then, when ../shared/data/paper/digitized_instruct_CD.csv is there, the joint C/D law
(loglinear_kn e_form=joint, the pooled phi, on C from step 5): its fit, and `--bootstrap`
refits through `rlscale.laws.bootstrap.bootstrap` (AR(1)/random-effect residual resamples), whose
one-off leave-one-size-out and forward folds (a fit each) are timed apart from the refits.
The last line is `speedup_vs_cmaes: <CMA-ES time / our fit time>`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cma
import numpy as np
import pandas as pd

from rlscale.laws import FittedLaw, get_law, pooled_phi, prepare_points
from rlscale.laws.synthetic import simulate_curves

PAPER_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "paper"
# The authors' base-C full-data fit (reference.json), used when the paper's data are absent.
BASE_C = {"Kmax": 0.13304186850061026, "N0": 13781599883.267672,
          "E": {0.5e9: 0.0640, 1.5e9: 0.2074, 3e9: 0.3741, 7e9: 0.7045, 14e9: 1.0848,
                32e9: 1.5359, 72e9: 1.8957}}
BASE_C_RUN_STD = [0.0082, 0.0091, 0.0129, 0.0147, 0.0149, 0.0056, 0.0143]


def load(data: Path | None, x: str) -> tuple[pd.DataFrame, str]:
    path = data or PAPER_DATA / f"digitized_instruct_{x}.csv"
    if path.exists():
        return pd.read_csv(path), f"{path.name} (from step 5)"
    truth = FittedLaw(law="loglinear_kn", x="C", params=BASE_C)
    table = simulate_curves(truth, list(BASE_C["E"]), noise_std=BASE_C_RUN_STD, runs=3, seed=0)
    return table, "synthetic from the paper's base-C fit (7 sizes x 105 steps, 3 runs)"


def cmaes_fit(points, *, restarts: int = 5, popsize: int = 20, sigma0: float = 0.3):
    """The authors' procedure; returns (Kmax, N0, E per size, objective)."""
    index, lx, L = points.size_index, np.log10(points.X), points.L
    n_sizes = len(points.sizes)
    counts = np.bincount(index)
    lower = np.r_[0.0, 1e8, np.full(n_sizes, -1.0)]
    upper = np.r_[1.0, 1e11, np.full(n_sizes, 3.0)]

    def objective(u):
        p = lower + np.asarray(u) * (upper - lower)
        k = p[0] / (1.0 + p[1] / points.N)
        residual = 10.0 ** (p[2:][index] - k * lx) - L
        return float(np.mean(np.bincount(index, residual**2) / counts))

    best = None
    for restart in range(restarts):
        es = cma.CMAEvolutionStrategy(np.full(len(lower), 0.5), sigma0,
                                      {"bounds": [0, 1], "popsize": popsize, "seed": restart + 1,
                                       "verbose": -9})
        es.optimize(objective)
        if best is None or es.result.fbest < best[1]:
            best = (es.result.xbest, es.result.fbest)
    p = lower + best[0] * (upper - lower)
    return p[0], p[1], p[2:], best[1]


def bootstrap(points, fitted, n: int, seed: int = 0) -> np.ndarray:
    """Refit on points resampled with replacement within each size's curve (warm start)."""
    rng = np.random.default_rng(seed)
    law = get_law("loglinear_kn")
    groups = [np.flatnonzero(points.size_index == i) for i in range(len(points.sizes))]
    kmax = np.empty(n)
    for b in range(n):
        sample = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        kmax[b] = law.fit(points.subset(sample), init=fitted).params["Kmax"]
    return kmax


def joint_fit(n_boot: int) -> None:
    """Time the joint C/D law's fit and `n_boot` bootstrap refits of it on the paper's curves."""
    from rlscale.laws.bootstrap import bootstrap as law_bootstrap
    from rlscale.laws.bootstrap import held_out_deviations

    path = PAPER_DATA / "digitized_instruct_CD.csv"
    if not path.exists():
        print(f"joint  : skipped ({path} not found)")
        return
    table = pd.read_csv(path)
    start = time.perf_counter()
    phi = pooled_phi(table)
    phi_time = time.perf_counter() - start
    law = get_law("loglinear_kn", e_form="joint", phi=phi)
    points = prepare_points(table, "C", warmup=4)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        fitted = law.fit(points)
        times.append(time.perf_counter() - start)
    p = fitted.params
    print(f"joint  : {path.name}, C from step 5, phi {phi:.4g} (pooled + C/D checks "
          f"{phi_time * 1e3:.1f} ms): Kmax {p['Kmax']:.5f}  N0 {p['N0']:.4e}  Emax {p['Emax']:.4f}  "
          f"N1 {p['N1']:.4e}  objective {fitted.metrics['objective']:.8e}  time "
          f"{statistics.median(times) * 1e3:.1f} ms (median of 7)")
    if not n_boot:
        return
    start = time.perf_counter()
    loso = held_out_deviations(points, law, fitted)
    loso_time = time.perf_counter() - start
    start = time.perf_counter()
    ahead = held_out_deviations(points, law, fitted, forward=True)
    ahead_time = time.perf_counter() - start
    print(f"joint bootstrap folds (once per call): leave-one-size-out {len(loso)} fits "
          f"{loso_time:.2f} s, forward {len(ahead)} fits {ahead_time:.2f} s")
    start = time.perf_counter()
    result = law_bootstrap(table, law, "C", n=n_boot, warmup=4)
    total = time.perf_counter() - start
    refits = total - loso_time - ahead_time - statistics.median(times)  # the folds and full fit
    low, high = result.interval([r.params["Kmax"] for r in result.replicates])
    print(f"joint bootstrap: {n_boot} refits, {total:.2f} s in all ({refits:.2f} s refits, "
          f"{refits / n_boot * 1e3:.1f} ms each; {result.n_failed} failed, "
          f"{result.n_bounds_hit} on a bound); Kmax 95% CI [{low:.4f}, {high:.4f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--x", default="C")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    table, label = load(args.data, args.x)
    points = prepare_points(table, args.x, warmup=4 if "digitized" in label else 0)
    print(f"data: {label}: {len(points.sizes)} sizes, {len(points)} points")

    law = get_law("loglinear_kn")
    times = []
    for _ in range(7):
        start = time.perf_counter()
        ours = law.fit(points)
        times.append(time.perf_counter() - start)
    ours_time = statistics.median(times)
    ours_obj = ours.metrics["objective"]
    print(f"ours   : Kmax {ours.params['Kmax']:.5f}  N0 {ours.params['N0']:.4e}  "
          f"objective {ours_obj:.8e}  time {ours_time * 1e3:.1f} ms (median of 7)")

    start = time.perf_counter()
    kmax, n0, _, cma_obj = cmaes_fit(points)
    cma_time = time.perf_counter() - start
    print(f"CMA-ES : Kmax {kmax:.5f}  N0 {n0:.4e}  objective {cma_obj:.8e}  time {cma_time:.2f} s "
          "(5 restarts, popsize 20, sigma0 0.3)")

    if args.bootstrap:
        start = time.perf_counter()
        samples = bootstrap(points, ours, args.bootstrap)
        boot_time = time.perf_counter() - start
        low, high = np.percentile(samples, [2.5, 97.5])
        print(f"bootstrap: {args.bootstrap} refits in {boot_time:.2f} s "
              f"({boot_time / args.bootstrap * 1e3:.1f} ms each); Kmax 95% CI [{low:.4f}, {high:.4f}]")

    joint_fit(args.bootstrap)

    relative = (ours_obj - cma_obj) / cma_obj
    verdict = "equal or lower" if relative <= 1e-9 else f"HIGHER by {relative:.2e}"
    print(f"objective, ours vs CMA-ES: {verdict} (relative difference {relative:+.2e})")
    print(f"speedup_vs_cmaes: {cma_time / ours_time:.1f}")


if __name__ == "__main__":
    main()
