"""How far two pretraining draws of one family size differ, against the forecast errors the laws
are held to (docs/miniature.md, "A second pretraining draw").

    python bench/member_scatter.py RUNS_A RUNS_B [--warmup 4]

RUNS_A, RUNS_B: the Exp 1 ladders of two draws of the family, e.g. a demo's runs/exp1_ladder and
the runs of specs/ablations/second_draw.yaml (the same RL recipe and seed, another corpus seed
for pretraining). Prints, per size, L at the first and last step, the mean absolute gap between
the two curves and each one's free k (C); then the largest size predicted fully out of sample
(the default laws of `rlscale predict --protocol inter`) from each draw, from the other draw's
smaller sizes, and from both draws pooled. Same runs, same figures. Not a timing.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import LawWarning, load_law_table
from rlscale.laws.validate import inter_model
from rlscale.report.curves import free_slopes
from rlscale.units import format_size


def ladder(root, tag: str, warmup: int) -> pd.DataFrame:
    table = load_law_table(root)
    table = table[~table["step"].between(1, warmup)].reset_index(drop=True)
    return table.assign(run=tag + ":" + table["run"].astype(str))


def top_error(table: pd.DataFrame, x: str) -> str:
    try:
        return f"{inter_model(table, None, x).errors['overall']['mape']:.2%}"
    except LawError as e:
        return f"not computed ({e})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_a")
    parser.add_argument("runs_b")
    parser.add_argument("--warmup", type=int, default=4, help="the warm-up clip (the demo's: 4)")
    args = parser.parse_args()
    warnings.simplefilter("ignore", LawWarning)
    A, B = ladder(args.runs_a, "A", args.warmup), ladder(args.runs_b, "B", args.warmup)

    print("| N | L first A / B | L last A / B | mean abs gap of L | free k (C) A / B | R^2 A / B |")
    print("|---|---|---|---|---|---|")
    for n in sorted(set(A["N"]) & set(B["N"])):
        a, b = A[A["N"] == n].set_index("step"), B[B["N"] == n].set_index("step")
        steps = a.index.intersection(b.index)
        late = steps[steps > args.warmup]
        gap = float(np.mean(np.abs(b.loc[late, "L"] / a.loc[late, "L"] - 1)))
        ka, kb = (free_slopes(t[t["N"] == n], "C", min_step=args.warmup + 1).iloc[0] for t in (A, B))
        first, last = steps.min(), steps.max()
        print(f"| {format_size(n)} | {a.loc[first, 'L']:.3f} / {b.loc[first, 'L']:.3f} | "
              f"{a.loc[last, 'L']:.3f} / {b.loc[last, 'L']:.3f} | {gap:.1%} | "
              f"{ka.k:.4f} / {kb.k:.4f} | {ka.r2:.3f} / {kb.r2:.3f} |")

    top = max(A["N"].max(), B["N"].max())
    families = {
        "A": A, "B": B,
        "A's smaller sizes, B's top": pd.concat([A[A["N"] < top], B[B["N"] == top]]),
        "B's smaller sizes, A's top": pd.concat([B[B["N"] < top], A[A["N"] == top]]),
        "A and B pooled (two runs a size)": pd.concat([A, B]),
    }
    print(f"\n| ladder | {format_size(top)} fully out of sample, C | D |\n|---|---|---|")
    for name, table in families.items():
        print(f"| {name} | {top_error(table, 'C')} | {top_error(table, 'D')} |")


if __name__ == "__main__":
    main()
