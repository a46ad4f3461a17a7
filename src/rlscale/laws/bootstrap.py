"""Bootstrap uncertainty for a fitted law: parameter intervals and prediction bands.

Resampling, per model size:
- a size with two or more runs: its runs are drawn with replacement (whole runs, so the steps of
  a run stay together and the run-to-run spread is what varies);
- a size with one run (or a table without a `run` column): the fitted curve times a new residual
  series from `laws.noise.ResidualModel` (a fresh offset and tilt of the curve from the across-size
  spread, and a sieve-AR(1) series within the curve), because residuals are correlated along a
  run and from size to size: independent or short-block resamples made bands that covered 3-77% of
  held-out points at a nominal 90% on the paper's curves.
Each resample is refitted (warm-started from the full-data fit). Intervals are percentiles of the
replicates. Prediction bands add to each replicate's curve a residual draw of the same model (for
points after a size's fitted range, the AR(1) continues from the last fitted residual): they bound
new observed points, whereas `kind="mean"` bands bound the curve itself. `coverage` checks a band
on held-out points. Same seed, same data: the same result.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import FittedLaw, LawWarning, Points, format_size, prepare_points, size_key
from rlscale.laws.noise import ResidualModel, fitted_size, offset_and_tilt
from rlscale.laws.validate import predict, resolve_law

NOISE_DRAWS = 4000  # residual draws behind a prediction band (spread over the replicates)


@dataclass(frozen=True)
class BootstrapResult:
    """The full-data fit, its bootstrap replicates and what is needed for bands.

    method: size key -> 'runs' or 'ar1-residual'; residuals: size -> the full fit's log10
    residuals, log_x: size -> log10 X, steps: size -> step, each at the size's fitted points in X
    order (the noise model is refitted from them, so the result round-trips through JSON).
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
    log_x: dict[float, np.ndarray] = field(default_factory=dict)
    steps: dict[float, np.ndarray] = field(default_factory=dict)
    deviations: dict[float, tuple[float, float]] = field(default_factory=dict)  # held out (u, v)
    forward: dict[float, tuple[float, float]] = field(default_factory=dict)  # from smaller sizes

    @property
    def noise(self) -> ResidualModel:
        sizes = sorted(self.residuals)
        return ResidualModel.fit(np.concatenate([np.full(len(self.residuals[s]), s) for s in sizes]),
                                 np.concatenate([self.log_x[s] for s in sizes]),
                                 np.concatenate([self.residuals[s] for s in sizes]),
                                 law_slope(self.fitted), self.deviations, self.forward)

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

    def band(self, N, X, *, kind: str = "prediction", step=None) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of L at (N, X): 'prediction' (where new observed points should fall) or
        'mean' (where the law's curve is). step: the points' steps, for how far after a size's
        last fitted evaluation each comes (without it: their order in X past the fitted range)."""
        if kind not in ("prediction", "mean"):
            raise LawError(f"band kind must be 'prediction' or 'mean', got {kind!r}")
        N, X = np.broadcast_arrays(np.asarray(N, float), np.asarray(X, float))
        shape, N, X = N.shape, N.ravel(), X.ravel()
        step = None if step is None else np.broadcast_to(np.asarray(step, float), shape).ravel()
        curves = np.stack([predict(r, N, X) for r in self.replicates])  # (replicates, points)
        if kind == "prediction":
            # several noise draws per replicate: smooth percentiles from a few hundred refits
            curves = np.repeat(curves, max(1, NOISE_DRAWS // len(curves)), axis=0)
            rng = np.random.default_rng(self.seed)
            model, log_x = self.noise, np.log10(X)
            for size in np.unique(N):
                cols = np.flatnonzero(size == N)
                horizon = self._horizon(size, log_x[cols], None if step is None else step[cols])
                draws = model.forecast(size, log_x[cols], horizon, len(curves), rng)
                curves[:, cols] = curves[:, cols] * 10.0**draws
        lo, hi = np.percentile(curves, self._quantiles(), axis=0)
        return lo.reshape(shape), hi.reshape(shape)

    def _horizon(self, size, log_x, step) -> np.ndarray:
        """Evaluations after the size's last fitted one (0 inside the fitted range); a size never
        fitted counts from its first point."""
        known = fitted_size(self.log_x, size)
        if known is None:
            return np.argsort(np.argsort(log_x)) + 1
        last_x = self.log_x[known][-1]
        fitted_steps = self.steps.get(known)
        if step is not None and fitted_steps is not None and len(fitted_steps) >= 2:
            spacing = float(np.median(np.diff(fitted_steps))) or 1.0
            ahead = np.ceil((step - fitted_steps[-1]) / spacing)
            return np.where(log_x > last_x, np.maximum(ahead, 1), 0)
        rank = np.argsort(np.argsort(log_x))  # order among the queried points
        beyond = log_x > last_x
        return np.where(beyond, rank - (~beyond).sum() + 1, 0)

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
                "log_x": {size_key(s): r.tolist() for s, r in self.log_x.items()},
                "steps": {size_key(s): r.tolist() for s, r in self.steps.items()},
                "deviations": {size_key(s): list(d) for s, d in self.deviations.items()},
                "forward": {size_key(s): list(d) for s, d in self.forward.items()},
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
                       [float(s) for s in data.get("sizes", [])],
                       {float(s): np.asarray(r, float) for s, r in data["log_x"].items()},
                       {float(s): np.asarray(r, float) for s, r in data.get("steps", {}).items()},
                       {float(s): (float(d[0]), float(d[1]))
                        for s, d in data.get("deviations", {}).items()},
                       {float(s): (float(d[0]), float(d[1]))
                        for s, d in data.get("forward", {}).items()})
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
    log_x = np.log10(points.X)
    residuals = np.log10(points.L) - np.log10(np.clip(predict(fitted, points.N, points.X), 1e-9, None))
    deviations = held_out_deviations(points, law, fitted)
    ahead = held_out_deviations(points, law, fitted, forward=True)
    noise = ResidualModel.fit(points.N, log_x, residuals, law_slope(fitted), deviations, ahead)
    runs = _runs_by_size(data, x, warmup)  # size -> the size's rows, only where it has >= 2 runs
    method = {size_key(s): "runs" if s in runs else "ar1-residual" for s in points.sizes}
    rng = np.random.default_rng(seed)
    replicates, failed, bounds_hit = [], 0, 0
    with _progress(progress, n) as advance:
        for _ in range(n):
            sample = _resample(points, fitted, noise, runs, x, rng)
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
    def by_size(values):
        return {float(s): values[points.size_index == i] for i, s in enumerate(points.sizes)}

    return BootstrapResult(fitted, replicates, level, seed, method, by_size(residuals), failed,
                           bounds_hit, [float(s) for s in points.sizes], by_size(log_x),
                           by_size(points.step.astype(float)), deviations, ahead)


def bootstrap_protocol(result, table=None, *, n: int = 200, seed: int = 0, level: float = 0.95,
                       warmup: int = 0, progress: bool = False) -> BootstrapResult:
    """Bootstrap a protocol's training part (a `validate.ValidationResult`), the way its law was
    fitted: the raw rows of `table` where runs and steps are known (so whole runs can be drawn),
    else the training points. For the refit-intercept variant, E of the target is refitted in
    every replicate. `coverage(result_of_this, result.heldout)` then checks its bands."""
    train = result.train.to_frame().rename(columns={result.train.x: result.x})
    if table is not None and "step" in table.columns and table["step"].notna().all():
        train = table.merge(train[["N", "step"]], on=["N", "step"], how="inner")
    boot = bootstrap(train, resolve_law(result.law), result.x, n=n, seed=seed, level=level,
                     warmup=warmup, progress=progress)
    if result.in_sample_parameters:
        if table is None:
            raise LawError("the refit-intercept variant's bootstrap needs the table (the target's "
                           "own points)")
        target = prepare_points(table, result.x, warmup=warmup, sizes=[result.heldout["N"].iloc[0]])
        boot = boot.map(lambda fitted: fitted.refit_intercepts(target))
    return boot


def held_out_deviations(points: Points, law, fitted: FittedLaw, *,
                        forward: bool = False) -> dict[float, tuple[float, float]]:
    """size -> (offset u, tilt v) of the size's log residuals from a fit that did not see it.

    forward=False: leave one size out (each size against all the others); forward=True: each
    size against the sizes below it only, as a size larger than every fitted one is predicted
    (extrapolation errs more than interpolation: the paper's 72B C-law is off by 5%, its middle
    sizes by about 1%). The size is predicted where the law has a parametric E(N), else its
    intercept is refitted on its own points (then only the tilt, k(N)'s error, is held out).
    Sizes whose fold cannot be fitted (too few sizes left) are left out."""
    from rlscale.laws.validate import can_predict_unseen_size

    out = {}
    for size in points.sizes:
        others = points.sizes[points.sizes < size] if forward else points.sizes[points.sizes != size]
        if len(others) == 0:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LawWarning)
                fold = law.fit(points.for_sizes(others), x=points.x, init=fitted)
                own = points.for_sizes([size])
                if not can_predict_unseen_size(fold, size):
                    fold = fold.refit_intercepts(own)
        except LawError:
            continue
        log_x = np.log10(own.X)
        r = np.log10(own.L) - np.log10(np.clip(predict(fold, own.N, own.X), 1e-9, None))
        out[float(size)] = offset_and_tilt(log_x, r)
    return out


def law_slope(fitted: FittedLaw):
    """N -> the law's log-log slope k(N), or None for a law without one (additive, sigmoid)."""
    try:
        fitted.k(fitted.sizes[0] if fitted.sizes else 1e9)
    except (LawError, KeyError, ValueError, TypeError):
        return None
    return lambda N: float(np.asarray(fitted.k(N), float).ravel()[0])


def _runs_by_size(data, x, warmup) -> dict[float, pd.DataFrame]:
    if isinstance(data, Points) or "run" not in data.columns or "step" not in data.columns:
        return {}
    rows = data[(data["step"] > max(warmup, 0))]
    return {float(size): g for size, g in rows.groupby("N") if g["run"].nunique() >= 2}


def _resample(points: Points, fitted: FittedLaw, noise: ResidualModel, runs, x, rng) -> pd.DataFrame:
    parts = []
    curve = predict(fitted, points.N, points.X)
    for i, size in enumerate(points.sizes):
        if float(size) in runs:
            rows = runs[float(size)]
            ids = rows["run"].unique()
            drawn = rng.choice(len(ids), size=len(ids), replace=True)
            # a run drawn twice counts twice in the per-step mean
            parts += [rows[rows["run"] == ids[d]] for d in drawn]
            continue
        index = np.flatnonzero(points.size_index == i)  # in X (step) order
        draws = noise.resample(float(size), np.log10(points.X[index]), rng)
        L = np.clip(curve[index] * 10.0**draws, 1e-6, 1.0)
        parts.append(pd.DataFrame({"N": size, "step": points.step[index], x: points.X[index], "L": L}))
    return pd.concat(parts, ignore_index=True)[["N", "step", x, "L"]]


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
    step = heldout["step"].to_numpy() if "step" in heldout else None
    lo, hi = result.band(heldout["N"].to_numpy(), heldout["X"].to_numpy(), kind=kind, step=step)
    inside = (heldout["L"].to_numpy() >= lo) & (heldout["L"].to_numpy() <= hi)
    by_size = {size_key(s): float(inside[(heldout["N"] == s).to_numpy()].mean())
               for s in np.unique(heldout["N"])}
    return {"overall": float(inside.mean()), "by_size": by_size, "level": result.level,
            "kind": kind, "n": int(len(inside))}


def describe_method(result: BootstrapResult) -> str:
    """One line: how each size was resampled."""
    return ", ".join(f"{format_size(float(s))}: {m}" for s, m in result.method.items())
