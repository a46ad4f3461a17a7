"""Bootstrap uncertainty for a fitted law: parameter intervals and prediction bands.

Resampling, per model size:
- a size with two or more runs: its runs are drawn with replacement (whole runs, so the steps of
  a run stay together and the run-to-run spread is what varies);
- a size with one run (or a table without a `run` column): a moving-block residual bootstrap of
  its curve. Residuals of the full-data fit (linear L), in step order, are cut into overlapping
  blocks of length ceil(n^(1/3)), drawn with replacement and added back to the fitted curve. Blocks,
  not single points, because neighbouring steps share evaluation noise (autocorrelated residuals);
  residuals, not (X, L) pairs, because the fit averages points per step, so duplicated pairs would
  collapse and the resample would only be a subsample.
Each resample is refitted (warm-started from the full-data fit). Intervals are percentiles of the
replicates. Prediction bands add to each replicate's curve a residual drawn from the size's own
residuals (all sizes pooled for a size never fitted): they bound new observed points, whereas
`kind="mean"` bands bound the curve itself. Same seed, same data: the same result.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import FittedLaw, LawWarning, Points, format_size, prepare_points, size_key
from rlscale.laws.validate import predict, resolve_law


@dataclass(frozen=True)
class BootstrapResult:
    """The full-data fit, its bootstrap replicates and what is needed for bands.

    method: size key -> 'runs' or 'block-residual'; residuals: size -> full-fit residuals (L).
    """

    fitted: FittedLaw
    replicates: list[FittedLaw]
    level: float
    seed: int
    method: dict[str, str]
    residuals: dict[float, np.ndarray]
    n_failed: int = 0
    n_bounds_hit: int = 0
    sizes: list[float] = field(default_factory=list)

    def _quantiles(self) -> tuple[float, float]:
        tail = (1.0 - self.level) / 2.0 * 100.0
        return tail, 100.0 - tail

    def interval(self, values) -> tuple[float, float]:
        """The percentile interval of replicate values at this result's level."""
        lo, hi = np.percentile(np.asarray(values, float), self._quantiles())
        return float(lo), float(hi)

    def intervals(self, sizes=None) -> dict[str, dict[str, float]]:
        """name -> {estimate, lo, hi} for every scalar parameter (Kmax, N0, ...), every per-size
        parameter (`E[7000000000.0]`), and k(N), E(N) at `sizes` (default: the fitted sizes)
        where the law defines them."""
        out = {}
        for name, value in self.fitted.params.items():
            if isinstance(value, dict):
                for size, estimate in value.items():
                    reps = [r.params[name][size] for r in self.replicates]
                    out[f"{name}[{size_key(size)}]"] = self._entry(estimate, reps)
            else:
                out[name] = self._entry(value, [r.params[name] for r in self.replicates])
        for name in ("k", "E"):
            if name in self.fitted.params:  # a per-size parameter: listed above
                continue
            for size in self.sizes if sizes is None else sizes:
                try:
                    estimate = float(getattr(self.fitted, name)(size))
                    reps = [float(getattr(r, name)(size)) for r in self.replicates]
                except LawError:
                    continue  # the law has no such function, or not at this size
                out[f"{name}({size_key(size)})"] = self._entry(estimate, reps)
        return out

    def _entry(self, estimate, replicate_values) -> dict[str, float]:
        lo, hi = self.interval(replicate_values)
        return {"estimate": float(estimate), "lo": lo, "hi": hi}

    def band(self, N, X, *, kind: str = "prediction") -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of L at (N, X): 'prediction' (where new observed points should fall) or
        'mean' (where the law's curve is)."""
        if kind not in ("prediction", "mean"):
            raise LawError(f"band kind must be 'prediction' or 'mean', got {kind!r}")
        N, X = np.broadcast_arrays(np.asarray(N, float), np.asarray(X, float))
        curves = np.stack([predict(r, N, X) for r in self.replicates])  # (replicates, points)
        if kind == "prediction":
            rng = np.random.default_rng(self.seed)
            pooled = np.concatenate(list(self.residuals.values()))
            noise = np.empty_like(curves)
            for j, size in enumerate(N.ravel()):
                pool = next((r for s, r in self.residuals.items() if math.isclose(s, size, rel_tol=1e-6)),
                            pooled)
                noise[:, j] = rng.choice(pool, size=len(curves))
            curves = curves + noise
        lo, hi = np.percentile(curves, self._quantiles(), axis=0)
        return lo.reshape(N.shape), hi.reshape(N.shape)

    def map(self, transform) -> BootstrapResult:
        """The same result with `transform(fitted)` applied to the fit and every replicate (e.g.
        refitting one size's intercept for the paper's inter-model variant)."""
        return replace(self, fitted=transform(self.fitted),
                       replicates=[transform(r) for r in self.replicates])

    def to_dict(self) -> dict:
        return {"fitted": self.fitted.to_dict(), "level": self.level, "seed": self.seed,
                "n_replicates": len(self.replicates), "n_failed": self.n_failed,
                "n_bounds_hit": self.n_bounds_hit, "method": self.method,
                "intervals": self.intervals(),
                "replicates": [r.to_dict()["params"] for r in self.replicates],
                "residuals": {size_key(s): r.tolist() for s, r in self.residuals.items()},
                "sizes": self.sizes}

    @classmethod
    def from_dict(cls, data: dict) -> BootstrapResult:
        try:
            fitted = FittedLaw.from_dict(data["fitted"])
            replicates = [FittedLaw.from_dict({**data["fitted"], "params": p, "metrics": {}})
                          for p in data["replicates"]]
            return cls(fitted, replicates, float(data["level"]), int(data["seed"]),
                       dict(data["method"]),
                       {float(s): np.asarray(r, float) for s, r in data["residuals"].items()},
                       int(data.get("n_failed", 0)), int(data.get("n_bounds_hit", 0)),
                       [float(s) for s in data.get("sizes", [])])
        except KeyError as err:
            raise LawError(f"bootstrap JSON has no key {err.args[0]!r}") from None


def bootstrap(data, law, x: str = "C", *, n: int = 200, seed: int = 0, level: float = 0.95,
              warmup: int = 0, progress: bool = False) -> BootstrapResult:
    """Fit `law` to `data` (a law table or Points), then refit it to `n` resamples (see the module
    docstring for how each size is resampled). Replicates whose refit fails are dropped and
    counted (`n_failed`); more than a tenth failing is an error."""
    if not 0 < level < 1:
        raise LawError(f"level must be in (0, 1), got {level}")
    if n < 2:
        raise LawError(f"the bootstrap needs at least 2 replicates, got n={n}")
    law = resolve_law(law)
    points = prepare_points(data, x, warmup=warmup)
    fitted = law.fit(points, x=x)
    residuals = points.L - predict(fitted, points.N, points.X)
    runs = _runs_by_size(data, x, warmup)  # size -> the size's rows, only where it has >= 2 runs
    method = {size_key(s): "runs" if s in runs else "block-residual" for s in points.sizes}
    rng = np.random.default_rng(seed)
    replicates, failed, bounds_hit = [], 0, 0
    with _progress(progress, n) as advance:
        for _ in range(n):
            sample = _resample(points, fitted, residuals, runs, x, rng)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", LawWarning)
                    replicate = law.fit(sample, x=x, init=fitted)
            except LawError:
                failed += 1
            else:
                replicates.append(replicate)
                bounds_hit += bool(replicate.bounds_hit)
            advance()
    if failed > n / 10:
        raise LawError(f"{failed} of {n} bootstrap refits of {fitted.law} failed; the data cannot "
                       "support intervals")
    per_size = {float(s): residuals[points.size_index == i] for i, s in enumerate(points.sizes)}
    return BootstrapResult(fitted, replicates, level, seed, method, per_size, failed, bounds_hit,
                           [float(s) for s in points.sizes])


def _runs_by_size(data, x, warmup) -> dict[float, pd.DataFrame]:
    if isinstance(data, Points) or "run" not in data.columns or "step" not in data.columns:
        return {}
    rows = data[(data["step"] > max(warmup, 0))]
    return {float(size): g for size, g in rows.groupby("N") if g["run"].nunique() >= 2}


def _resample(points: Points, fitted: FittedLaw, residuals, runs, x, rng) -> pd.DataFrame:
    parts = []
    for i, size in enumerate(points.sizes):
        if float(size) in runs:
            rows = runs[float(size)]
            ids = rows["run"].unique()
            drawn = rng.choice(len(ids), size=len(ids), replace=True)
            # a run drawn twice counts twice in the per-step mean
            parts += [rows[rows["run"] == ids[d]] for d in drawn]
            continue
        index = np.flatnonzero(points.size_index == i)  # in X (step) order
        curve = points.L[index] - residuals[index]
        L = np.clip(curve + _block_resample(residuals[index], rng), 1e-6, 1.0)
        parts.append(pd.DataFrame({"N": size, "step": points.step[index], x: points.X[index], "L": L}))
    return pd.concat(parts, ignore_index=True)[["N", "step", x, "L"]]


def _block_resample(residuals: np.ndarray, rng) -> np.ndarray:
    """Moving-block bootstrap of a series: overlapping blocks of ceil(n^(1/3)), concatenated."""
    n = len(residuals)
    block = max(1, math.ceil(n ** (1 / 3)))
    starts = rng.integers(0, n - block + 1, size=math.ceil(n / block))
    return np.concatenate([residuals[s:s + block] for s in starts])[:n]


class _progress:
    """A rich progress bar over the refits (a no-op when progress is off)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import Progress

        self._bar = Progress(console=Console(stderr=True), transient=True)  # stdout may be JSON
        self._bar.__enter__()
        task = self._bar.add_task("bootstrap refits", total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc):
        if self.enabled:
            self._bar.__exit__(*exc)
        return False


def coverage(result: BootstrapResult, heldout: pd.DataFrame, *, kind: str = "prediction") -> dict:
    """Fraction of held-out points (columns N, X, L; e.g. ValidationResult.heldout) inside the
    bands, overall and per size; compare with the nominal `result.level`."""
    lo, hi = result.band(heldout["N"].to_numpy(), heldout["X"].to_numpy(), kind=kind)
    inside = (heldout["L"].to_numpy() >= lo) & (heldout["L"].to_numpy() <= hi)
    by_size = {size_key(s): float(inside[(heldout["N"] == s).to_numpy()].mean())
               for s in np.unique(heldout["N"])}
    return {"overall": float(inside.mean()), "by_size": by_size, "level": result.level,
            "kind": kind, "n": int(len(inside))}


def describe_method(result: BootstrapResult) -> str:
    """One line: how each size was resampled."""
    return ", ".join(f"{format_size(float(s))}: {m}" for s, m in result.method.items())
