"""How well the 90% prediction bands cover held-out points (issue 10's calibration figures).

    python bench/band_coverage.py [--runs RUN_DIR] [--refits 60] [--level 0.9] [--synthetic 40]

On the paper's Instruct curves (../shared/data/paper/digitized_instruct_CD.csv) and, with
--runs, on a run table (a demo's `runs/`: its Exp 1 ladder, the demo's 4-step warm-up clip), for
the C- and D-laws as `rlscale predict` fits them (laws.validate.predictive_law):
- intra-run: first 25% of every curve fitted, the rest predicted;
- inter-model, forward: every size from the 5th on predicted fully out of sample from the sizes
  below it (from 4 fitted sizes: with 3, no fold measures the across-size spread and no band is
  made), pooled (one held-out curve alone reads nearly 0 or 1: its points share one offset
  and tilt from the law), with each target's error, band half-width, and its actual offset u
  and relative tilt w = v / k(N) next to the scales the band draws them from.
--synthetic F: F synthetic ladders drawn from the paper's own D-law and residual structure
(`laws.synthetic.synthetic_ladders`), each with its largest size forecast fully out of sample from the smaller
ones: the inter-model band's coverage over F targets instead of the real data's four, where the
truth is known to follow the noise model the band assumes.
Same seed, same figures. Not a timing: bootstraps take ~1-5 s per protocol here.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from rlscale.experiments.demo import WARMUP_STEPS
from rlscale.laws import prepare_points
from rlscale.laws.bootstrap import bootstrap_protocol, coverage
from rlscale.laws.noise import offset_and_tilt
from rlscale.laws.validate import inter_model, intra_run
from rlscale.report.analysis import protocol_band
from rlscale.units import format_size

PAPER_CD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "paper" / \
    "digitized_instruct_CD.csv"


def intra(name, table, x, refits, level):
    result = intra_run(table, "loglinear_kn", x, fraction=0.25)
    band = protocol_band(result, refits, level).coverage
    by_size = ", ".join(f"{format_size(float(n))} {c:.0%}" for n, c in band["by_size"].items())
    print(f"{name} {x} intra-run: MAPE {result.errors['overall']['mape']:.2%}, "
          f"covers {band['overall']:.1%} ({by_size})")


def target_band(table, x, target, refits, level):
    """One size forecast fully out of sample: the protocol's result, its bootstrap, the band's
    coverage of the held-out points and its mean relative half-width."""
    result = inter_model(table, None, x, target=target)
    boot = bootstrap_protocol(result, n=refits, seed=0, level=level)
    held = result.heldout
    lo, hi = boot.band(held["N"], held["X"], step=held["step"])
    half = float(np.mean((hi - lo) / 2 / held["L_pred"]))
    return result, boot, coverage(boot, held), half


def forward(name, table, x, refits, level):
    sizes = prepare_points(table, x).sizes
    inside = total = 0
    for target in sizes[4:]:  # from 4 fitted sizes: with 3, no fold measures the spread (no band)
        result, boot, band, half = target_band(table, x, target, refits, level)
        held = result.heldout
        inside += band["overall"] * band["n"]
        total += band["n"]
        u, v = offset_and_tilt(np.log10(held["X"].to_numpy()),
                               np.log10(held["L"].to_numpy()) - np.log10(held["L_pred"].to_numpy()))
        noise = boot.noise
        u_scale, tilt_scale, dof = noise.scales(target)
        k = noise.slope(target) if noise.slope is not None else 1.0
        print(f"  {name} {x} {format_size(target)} from {len(result.train.sizes)} sizes: MAPE "
              f"{result.errors['overall']['mape']:.1%}, half-width {half:.1%}, covers "
              f"{band['overall']:.0%}; offset u {u:+.4f} (scale {u_scale:.4f}), tilt w "
              f"{v / k:+.2f} (scale {tilt_scale / abs(k):.2f}), t dof {dof}")
    print(f"{name} {x} inter-model, forward targets pooled: covers {inside / total:.1%} "
          f"of {total} points")


def synthetic(table, x, ladders, refits, level):
    """The largest size of `ladders` synthetic ladders shaped as `table`, forecast fully out of
    sample: the inter-model band's coverage over that many targets."""
    from rlscale.laws.synthetic import residual_scales, synthetic_ladders
    from rlscale.laws.validate import predictive_law, resolve_law

    points = prepare_points(table, x)
    truth = resolve_law(predictive_law(table, x)).fit(points, x=x)
    scales = residual_scales(table, truth)
    print(f"synthetic truth: {predictive_law(table, x)} fitted to the {x} curves; s_u "
          f"{scales['s_u']:.4f}, s_w {scales['s_w']:.3f}, AR(1) rho {scales['rho']:.2f}, "
          f"innovation sd {scales['sd']:.4f}")
    inside = total = mostly = 0
    halves, errs = [], []
    for ladder in synthetic_ladders(truth, points.to_frame(), **scales, ladders=ladders):
        result, _, band, half = target_band(ladder, x, None, refits, level)
        inside += band["overall"] * band["n"]
        total += band["n"]
        mostly += band["overall"] >= 0.5
        halves.append(half)
        errs.append(result.errors["overall"]["mape"])
    print(f"synthetic {x} inter-model, largest size from the smaller ones, {ladders} ladders: "
          f"covers {inside / total:.1%} of {total} points; {mostly}/{ladders} targets mostly "
          f"inside; median half-width {np.median(halves):.1%}, median MAPE {np.median(errs):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="a run table (e.g. rlscale-demo/runs)")
    parser.add_argument("--refits", type=int, default=60)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--synthetic", type=int, default=0,
                        help="synthetic ladders from the paper's D-law (0: none)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    tables = []
    if PAPER_CD.exists():
        tables.append(("paper", pd.read_csv(PAPER_CD)))
    if args.runs:
        from rlscale.report.curves import law_points, split_experiments
        from rlscale.runs import RunTable

        points = law_points(split_experiments(RunTable.load(args.runs).df).ladder)
        tables.append(("miniature", points[~points["step"].between(1, WARMUP_STEPS)]))
    if not tables:
        raise SystemExit(f"no data: {PAPER_CD} is absent and no --runs given")
    if args.synthetic:
        synthetic(tables[0][1].drop(columns="C", errors="ignore"), "D", args.synthetic,
                  args.refits, args.level)
        return
    for name, table in tables:
        for x in ("C", "D"):
            intra(name, table, x, args.refits, args.level)
            forward(name, table, x, args.refits, args.level)


if __name__ == "__main__":
    main()
