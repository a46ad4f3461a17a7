"""The C-law / D-law consistency check (PAPER.md §4, the authors' appendix C.2).

Compute and data are tied by C = N D phi, phi = C / (N D) = 6 x tokens per prompt (prompt and
all its rollouts' tokens). If log10 L = -k_D log10 D + E_D, then substituting D = C / (N phi):
    log10 L = -k_D log10 C + E_D + k_D log10(N phi),
so a C-law fitted on the same runs should find k_C = k_D and E_C = E_D + k_D log10(N phi).
`consistency` fits both laws and reports, per size, the slope gap and the intercept gap
E_C - (E_D + k_D log10(N phi)); also Kmax and N0 side by side where the law has them, and the
largest gap in L between the two laws' curves over the observed points (the practical measure:
the intercept gap sits at X = 1, far outside the data, where a small slope gap is magnified).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import FittedLaw, estimate_phi, prepare_points, size_key
from rlscale.laws.validate import predict, resolve_law

__all__ = ["ConsistencyResult", "consistency", "estimate_phi"]


@dataclass(frozen=True)
class ConsistencyResult:
    """Both fits, phi per size, the per-size comparison and the verdict.

    per_size columns: N, phi, tokens_per_prompt, k_C, k_D, k_rel_gap ((k_C - k_D) / k_D), E_C,
    E_C_implied (E_D + k_D log10(N phi)), E_gap (E_C - E_C_implied), curve_gap (max |L_C - L_D|
    over the size's observed points)."""

    fit_C: FittedLaw
    fit_D: FittedLaw
    per_size: pd.DataFrame
    shared: dict[str, dict[str, float]]  # e.g. Kmax -> {C, D, rel_gap}
    tol_k: float
    tol_curve: float

    @property
    def consistent(self) -> bool:
        """Every size's slope gap within tol_k (relative) and curve gap within tol_curve (in L).
        The intercept gap is reported, not judged: it is the slope gap times log10 X (~20 for C)
        plus the curve gap, so it adds no information and its scale has no natural tolerance."""
        return bool((self.per_size["k_rel_gap"].abs() <= self.tol_k).all()
                    and (self.per_size["curve_gap"] <= self.tol_curve).all())

    def to_dict(self) -> dict:
        rows = {size_key(r.N): {k: float(v) for k, v in r._asdict().items() if k not in ("Index", "N")}
                for r in self.per_size.itertuples()}
        return {"consistent": self.consistent, "tol_k": self.tol_k, "tol_curve": self.tol_curve,
                "shared": self.shared, "per_size": rows,
                "max_abs_k_rel_gap": float(self.per_size["k_rel_gap"].abs().max()),
                "max_abs_E_gap": float(self.per_size["E_gap"].abs().max()),
                "max_curve_gap": float(self.per_size["curve_gap"].max()),
                "fit_C": self.fit_C.to_dict(), "fit_D": self.fit_D.to_dict()}


def consistency(table: pd.DataFrame, law="loglinear_kn", *, phi: float | None = None,
                tol_k: float = 0.15, tol_curve: float = 0.02, warmup: int = 0) -> ConsistencyResult:
    """Fit `law` against C and against D on the same runs (`table` has both columns) and check
    k_C = k_D and E_C = E_D + k_D log10(N phi); the verdict is on the slope gap (tol_k, relative;
    the paper's own fits differ by 10%) and the curve gap (tol_curve, in L). phi: one value for all sizes, else estimated per
    size from the data (`estimate_phi`). The law must define k(N) and E(N) (loglinear_kn,
    loglinear)."""
    law = resolve_law(law)
    phis = estimate_phi(table) if phi is None else {float(n): float(phi) for n in table["N"].unique()}
    fit_C = law.fit(table, x="C", warmup=warmup)
    fit_D = law.fit(table, x="D", warmup=warmup)
    sizes = np.array(fit_C.sizes)
    try:
        k_C, k_D = fit_C.k(sizes), fit_D.k(sizes)
        E_C, E_D = fit_C.E(sizes), fit_D.E(sizes)
    except LawError as err:
        raise LawError(f"the consistency check needs a law with k(N) and E(N): {err}") from None
    phi_arr = np.array([phis[float(s)] for s in sizes])
    implied = E_D + k_D * np.log10(sizes * phi_arr)
    per_size = pd.DataFrame({
        "N": sizes, "phi": phi_arr, "tokens_per_prompt": phi_arr / 6.0, "k_C": k_C, "k_D": k_D,
        "k_rel_gap": (k_C - k_D) / k_D, "E_C": E_C, "E_C_implied": implied, "E_gap": E_C - implied,
        "curve_gap": [_curve_gap(table, fit_C, fit_D, s, warmup) for s in sizes],
    })
    shared = {name: {"C": fit_C.params[name], "D": fit_D.params[name],
                     "rel_gap": (fit_C.params[name] - fit_D.params[name]) / fit_D.params[name]}
              for name in ("Kmax", "N0", "Emax", "N1")
              if isinstance(fit_C.params.get(name), float) and name in fit_D.params}
    return ConsistencyResult(fit_C, fit_D, per_size, shared, tol_k, tol_curve)


def _curve_gap(table, fit_C, fit_D, size, warmup) -> float:
    """Largest |L_C(N, C) - L_D(N, D)| over the size's points (both laws at the same steps)."""
    c = prepare_points(table, "C", warmup=warmup, sizes=[size])
    d = prepare_points(table, "D", warmup=warmup, sizes=[size])
    return float(np.max(np.abs(predict(fit_C, c.N, c.X) - predict(fit_D, d.N, d.X))))
