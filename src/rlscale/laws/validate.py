"""Validation protocols: every error here is measured on points the fit never saw.

- `inter_model`: fit the sizes below a target size, predict the target's whole curve.
  `refit_intercept=True` is the paper's variant (k(target) predicted, E(target) fitted on the
  target's own data): it is labelled partially in-sample because one parameter saw the target.
- `intra_run`: fit the first `fraction` of each size's curve, predict the rest.
- `leave_one_size_out`: for each law, hold out each size in turn (fully out of sample, or with the
  intercept refitted) and average the held-out errors: the comparison of forms.

Held-out points are the run-averaged curve points per (N, step), as the fits see them; errors are
MAPE (a fraction), RMSE (in L) and R^2 around the held-out points' own mean, per held-out size and
pooled over all held-out points. In-sample R^2 is never reported as prediction accuracy.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rlscale.errors import LawError
from rlscale.laws.base import (
    FittedLaw,
    Points,
    format_size,
    get_law,
    phi_by_size,
    prediction_errors,
    prepare_points,
    size_key,
)

# --- the law API, in one place --------------------------------------------------------------------

def resolve_law(law):
    """A `Law` object, or a spec string `name` / `name:key=value,key=value` (e.g.
    `loglinear_kn:e_form=saturating`) given to `get_law`."""
    if not isinstance(law, str):
        return law
    name, _, opts = law.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise LawError(f"law option '{item}' in '{law}' is not key=value")
        options[key.strip()] = _parse_value(value.strip())
    return get_law(name.strip(), **options)


def _parse_value(text: str):
    if ":" in text:  # a mapping size -> number, as _format_value writes one: "5e8:43024;1.5e9:46434"
        pairs = [item.partition(":") for item in text.split(";")]
        try:
            return {float(key): float(value) for key, _, value in pairs}
        except ValueError:
            raise LawError(f"law option value '{text}' is not a mapping N:value;N:value") from None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _format_value(value) -> str:
    """An option value as `resolve_law` reads it back (a mapping as N:value;N:value)."""
    if isinstance(value, dict):
        return ";".join(f"{float(k)!r}:{float(v)!r}" for k, v in sorted(value.items()))
    return repr(value) if isinstance(value, float) else str(value)


def law_label(law) -> str:
    """A short name for reports that `resolve_law` reads back: the spec string as given, or for a
    Law object its name and the options that differ from their defaults."""
    if isinstance(law, str):
        return law
    defaults = {name: p.default for name, p in inspect.signature(type(law).__init__).parameters.items()}
    changed = [f"{k}={_format_value(v)}" for k, v in law.get_options().items() if defaults.get(k) != v]
    return law.name + (":" + ",".join(changed) if changed else "")


def short_label(spec: str) -> str:
    """A law spec for tables read by people: an option mapping per size (the joint law's phi) as
    "per size" and its geometric mean; the full spec stays in JSON, where resolve_law reads it."""
    name, _, opts = spec.partition(":")
    shown = []
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        mapping = _parse_value(value) if ":" in value else None
        if isinstance(mapping, dict) and mapping:
            mean = 10.0 ** np.mean(np.log10(list(mapping.values())))
            value = f"per size (geometric mean {mean:.4g})"
        shown.append(f"{key}={value}")
    return name + (":" + ",".join(shown) if shown else "")


def predict(fitted, N, X) -> np.ndarray:
    """`fitted.predict` on float arrays of equal length."""
    N, X = np.broadcast_arrays(np.asarray(N, float), np.asarray(X, float))
    return np.asarray(fitted.predict(N, X), float)


def can_predict_unseen_size(fitted, N: float) -> bool:
    """Whether the law gives a finite prediction at a size it was not fitted on (a parametric E(N));
    laws with a free intercept per size raise or return NaN there."""
    try:
        value = predict(fitted, [N], [1e3])
    except (LawError, KeyError, ValueError):
        return False
    return bool(np.all(np.isfinite(value)))


def refit_size_intercept(fitted, points: Points, size: float):
    """The fit with E(size) fitted on `size`'s own points and everything else (k(size) included)
    taken from `fitted`: the paper's inter-model variant."""
    return fitted.refit_intercepts(points.for_sizes([size]))


SATURATING_LAW = "loglinear_kn:e_form=saturating"  # parametric E(N): predicts unseen sizes


def predictive_law(table, x: str, sizes=None) -> str:
    """The default law for predicting a size no parameter saw: for the C-law of a table that also
    has D, the joint C/D form (loglinear_kn e_form='joint') with phi per size over `sizes` (the
    fitted ones, so a held-out size never informs phi: it gets their geometric mean); otherwise
    the saturating E(N).
    Measured, 72B predicted from 0.5B-32B on the paper's Instruct curves: C-law MAPE 8.5% with
    the saturating E(N), 5.3% joint with one pooled phi, 2.8% with phi per size (D-law 2.6%);
    every forward target 7B-72B: 3.0/4.5/2.3/2.8% per size against 2.6/3.7/2.2/5.3% pooled
    (docs/laws.md)."""
    if x == "C" and isinstance(table, pd.DataFrame):
        phis = phi_by_size(table, sizes)
        if phis is not None:
            return f"loglinear_kn:e_form=joint,phi={_format_value(phis)}"
    return SATURATING_LAW


def intercept_options(table, x: str, e_form: str | None = None, sizes=None) -> dict:
    """loglinear_kn's intercept options for a fit of `table`: `e_form` as asked (phi pooled from
    the table for 'joint'), or when None the default: the joint C/D law for the C-law of a table
    with both columns (the C-law borrows the D-law's flat intercept), else free intercepts."""
    if e_form is None:
        spec = predictive_law(table, x, sizes)
        if "joint" not in spec:
            return {"e_form": "free"}
        options = resolve_law(spec).get_options()
        return {"e_form": options["e_form"], "phi": options["phi"]}
    if e_form != "joint":
        return {"e_form": e_form}
    phis = phi_by_size(table, sizes)
    if phis is None:
        raise LawError("e_form joint needs both C and D columns (phi = C/(N D))")
    return {"e_form": e_form, "phi": phis}


# --- curve points and errors ----------------------------------------------------------------------

def errors(observed, predicted) -> dict:
    """n, MAPE (a fraction, as in the fit metrics: 0.02 = 2%), RMSE and R^2 (around the observed
    mean) of a set of held-out points: `laws.base.prediction_errors`, the one definition."""
    return prediction_errors(observed, predicted)


def heldout_report(points: pd.DataFrame) -> dict:
    """`errors` per held-out size (keys: N as a string, e.g. '7000000000.0') and overall."""
    by_size = {size_key(n): errors(g["L"], g["L_pred"]) for n, g in points.groupby("N")}
    return {"overall": errors(points["L"], points["L_pred"]), "by_size": by_size}


# --- results --------------------------------------------------------------------------------------

@dataclass
class ValidationResult:
    """One protocol run: the fit on the training part and the held-out points with predictions.

    `heldout` has columns N, step, X, L (observed), L_pred; `errors` is `heldout_report(heldout)`.
    `in_sample_parameters` names any parameter fitted on held-out data (the refit-intercept
    variant); empty means fully out of sample."""

    protocol: str
    law: str
    x: str
    fitted: FittedLaw
    heldout: pd.DataFrame
    errors: dict
    train_sizes: list[float]
    in_sample_parameters: list[str] = field(default_factory=list)
    note: str = ""
    train: Points | None = None  # the points the law was fitted on (before any intercept refit)

    def to_dict(self) -> dict:
        fitted = self.fitted.to_dict()
        return {"protocol": self.protocol, "law": self.law, "x": self.x,
                "params": fitted["params"], "options": fitted["options"],
                "train_sizes": [float(n) for n in self.train_sizes], "heldout": self.errors,
                "in_sample_parameters": self.in_sample_parameters, "note": self.note}


def _evaluate(fitted: FittedLaw, heldout: Points) -> pd.DataFrame:
    frame = heldout.to_frame().rename(columns={heldout.x: "X"})[["N", "step", "X", "L"]]
    frame["L_pred"] = predict(fitted, frame["N"], frame["X"])
    if not np.all(np.isfinite(frame["L_pred"])):
        raise LawError(f"law {fitted.law} gave non-finite predictions on the held-out points")
    return frame


def _result(protocol, law, fitted, train: Points, heldout: Points, in_sample=(), note=""):
    frame = _evaluate(fitted, heldout)
    return ValidationResult(protocol, law_label(law), heldout.x, fitted, frame, heldout_report(frame),
                            [float(s) for s in train.sizes], list(in_sample), note, train)


# --- protocols ------------------------------------------------------------------------------------

def inter_model(table, law=None, x: str = "C", *, target: float | None = None,
                refit_intercept: bool = False, warmup: int = 0) -> ValidationResult:
    """Fit every size below `target` (default: the largest size), predict the target's curve.

    Fully out of sample by default, which needs a law that predicts a size it never saw (a
    parametric E(N): `loglinear_kn:e_form=saturating` or `joint`, `additive`, `decomposition`);
    law None: `predictive_law` (the joint C/D law for C when the table has D).
    refit_intercept: the paper's variant; k(target) is predicted, E(target) is fitted on the
    target's own points, so the result is partially in-sample and labelled so."""
    points = prepare_points(table, x, warmup=warmup)
    target = float(points.sizes[-1] if target is None else points.for_sizes([target]).sizes[0])
    train_sizes = points.sizes[points.sizes < target]
    if len(train_sizes) < 2:
        raise LawError(f"inter-model needs at least 2 sizes below the target {format_size(target)}, "
                       f"has {len(train_sizes)}")
    train, heldout = points.for_sizes(train_sizes), points.for_sizes([target])
    if law is None:
        law = predictive_law(table, x, train_sizes)
    fitted = resolve_law(law).fit(train, x=x)
    name = format_size(target)
    if refit_intercept:
        fitted = refit_size_intercept(fitted, points, target)
        return _result("inter_refit_intercept", law, fitted, train, heldout, [f"E({name})"],
                       f"partially in-sample: E({name}) fitted on {name}'s own points, "
                       f"k({name}) predicted from the smaller sizes")
    _require_unseen_sizes(fitted, law, target)
    return _result("inter", law, fitted, train, heldout,
                   note=f"fully out of sample: no parameter saw {name}")


def _require_unseen_sizes(fitted, law, size):
    if not can_predict_unseen_size(fitted, size):
        raise LawError(f"law {law_label(law)} cannot predict the unseen size {format_size(size)} (a "
                       "free intercept per size); use a parametric E(N) (e.g. "
                       "loglinear_kn:e_form=saturating) or the refit-intercept variant")


def split_curves(points: Points, fraction: float) -> tuple[Points, Points]:
    """(train, held out): per size, the first ceil(fraction * n) points (in X order, i.e. steps)
    train and the rest of the curve is held out."""
    if not 0 < fraction < 1:
        raise LawError(f"fraction must be in (0, 1), got {fraction}")
    train = np.zeros(len(points), bool)
    for i, size in enumerate(points.sizes):  # points are sorted by N then X
        index = np.flatnonzero(points.size_index == i)
        n_train = math.ceil(fraction * len(index))
        if n_train < 2 or n_train >= len(index):
            raise LawError(f"size N={format_size(size)} ({size:g}): {len(index)} points cannot be split "
                           f"{fraction:.0%} / rest with at least 2 to fit and 1 to predict")
        train[index[:n_train]] = True
    return points.subset(train), points.subset(~train)


def intra_run(table, law, x: str = "C", *, fraction: float = 0.25,
              warmup: int = 0) -> ValidationResult:
    """Fit the first `fraction` of every size's curve, predict the rest of each curve."""
    train, heldout = split_curves(prepare_points(table, x, warmup=warmup), fraction)
    estimator = resolve_law(law)
    measured = _with_phi_of_fitted_steps(estimator, table, train)
    fitted = measured.fit(train, x=x)
    law = law_label(measured) if measured is not estimator else law  # what a refit must use
    return _result("intra", law, fitted, train, heldout,
                   note=f"fit on the first {fraction:.0%} of each curve, errors on the rest")


def _with_phi_of_fitted_steps(estimator, table, train: Points):
    """A joint law with phi per size, re-measured on the steps it is fitted to: phi drifts within a
    run as responses lengthen (up to 1.34x on the paper's), so the whole run's phi would carry the
    held-out steps' tokens into the fit. Any other law, or a table without rows, unchanged."""
    if not (isinstance(getattr(estimator, "phi", None), dict) and isinstance(table, pd.DataFrame)
            and "step" in table.columns):
        return estimator
    fitted = pd.MultiIndex.from_arrays([train.N, train.step])
    fitted_rows = table[pd.MultiIndex.from_arrays([table["N"].astype(float), table["step"]]).isin(fitted)]
    return get_law(estimator.name, **{**estimator.get_options(), "phi": phi_by_size(fitted_rows)})


@dataclass
class LosoResult:
    """Leave-one-size-out: per law, one ValidationResult per left-out size."""

    x: str
    folds: dict[str, list[ValidationResult]]
    failures: dict[str, str]  # law label -> why it could not be evaluated
    refit_intercept: bool = False

    def summary(self) -> dict[str, dict]:
        """law label -> mean over the left-out sizes of the held-out MAPE, RMSE, R^2."""
        out = {}
        for label, folds in self.folds.items():
            per = [f.errors["overall"] for f in folds]
            out[label] = {m: float(np.nanmean([p[m] for p in per])) for m in ("mape", "rmse", "r2")}
            out[label]["folds"] = len(folds)
        return out

    def best(self, metric: str = "rmse") -> str:
        """The law with the lowest mean held-out `metric` (the highest for r2)."""
        summary = self.summary()
        if not summary:
            raise LawError("no law could be evaluated by leave-one-size-out: "
                           + "; ".join(f"{k}: {v}" for k, v in self.failures.items()))
        sign = -1 if metric == "r2" else 1
        return min(summary, key=lambda label: sign * summary[label][metric])

    def to_dict(self) -> dict:
        return {"protocol": "loso", "x": self.x, "refit_intercept": self.refit_intercept,
                "summary": self.summary(), "best": self.best() if self.folds else None,
                "folds": {label: [{"heldout_size": f.heldout["N"].iloc[0], "heldout": f.errors,
                                   "params": f.to_dict()["params"]} for f in folds]
                          for label, folds in self.folds.items()},
                "failures": self.failures}


def leave_one_size_out(table, laws, x: str = "C", *, refit_intercept: bool = False,
                       warmup: int = 0) -> LosoResult:
    """For each law (a Law or a spec string), hold out each size in turn, fit the others and
    predict the held-out size: fully out of sample, or with its intercept refitted
    (`refit_intercept`, partially in-sample). A law that cannot be evaluated (e.g. a free
    intercept per size without refit_intercept) is listed in `failures` with the reason."""
    laws = [laws] if isinstance(laws, str) or not isinstance(laws, list | tuple) else list(laws)
    points = prepare_points(table, x, warmup=warmup)
    if len(points.sizes) < 3:
        raise LawError(f"leave-one-size-out needs at least 3 sizes, has {len(points.sizes)}")
    folds, failures = {}, {}
    for law in laws:
        try:
            folds[law_label(law)] = [_loso_fold(points, law, size, refit_intercept)
                                     for size in points.sizes]
        except LawError as err:
            failures[law_label(law)] = str(err)
    return LosoResult(x, folds, failures, refit_intercept)


def _loso_fold(points: Points, law, size: float, refit: bool) -> ValidationResult:
    train = points.for_sizes(points.sizes[points.sizes != size])
    fitted = resolve_law(law).fit(train, x=points.x)
    if refit:
        fitted = refit_size_intercept(fitted, points, size)
    else:
        _require_unseen_sizes(fitted, law, size)
    return _result("loso", law, fitted, train, points.for_sizes([size]),
                   [f"E({format_size(size)})"] if refit else [])


# --- one protocol as the CLI reports it ---------------------------------------------------------

def run_protocol(table, protocol, laws, x, *, fraction=0.25, target=None, refit_intercept=False,
                 warmup=0, bootstrap_n=0, seed=0, level=0.95) -> dict:
    """The JSON report of one protocol: the result's fields (law, params, heldout, ...), plus
    `fully_out_of_sample` for inter --refit-intercept and `bootstrap` (intervals, coverage)."""
    if protocol == "loso":
        return leave_one_size_out(table, laws, x, refit_intercept=refit_intercept,
                                  warmup=warmup).to_dict()
    if len(laws) != 1:
        raise LawError(f"--protocol {protocol} takes one --law, got {len(laws)}")
    if protocol == "intra":
        result = intra_run(table, laws[0], x, fraction=fraction, warmup=warmup)
    else:
        result = inter_model(table, laws[0], x, target=target, refit_intercept=refit_intercept,
                             warmup=warmup)
    report = result.to_dict()
    if protocol == "inter" and refit_intercept:
        oos_law = parametric_counterpart(laws[0])
        try:
            report["fully_out_of_sample"] = inter_model(table, oos_law, x, target=target,
                                                        warmup=warmup).to_dict()
        except LawError as err:
            report["fully_out_of_sample"] = {"law": oos_law or "predictive", "error": str(err)}
    if bootstrap_n:
        report["bootstrap"] = protocol_bootstrap(table, result, bootstrap_n, seed, level, warmup)
    return report


def parametric_counterpart(spec: str) -> str | None:
    """The fully out-of-sample twin of the refit-intercept law: plain loglinear_kn gets the
    default predictive law (None: joint C/D or saturating E(N)), loglinear_kn with options a
    saturating E(N); any other law is used as it is."""
    name, _, options = spec.partition(":")
    if name != "loglinear_kn":
        return spec
    if not options:
        return None
    kept = [item for item in options.split(",") if item and not item.startswith("e_form")]
    return f"{name}:{','.join([*kept, 'e_form=saturating'])}"


def protocol_bootstrap(table, result, n, seed, level, warmup) -> dict:
    """`laws.bootstrap.bootstrap_protocol` as the CLI reports it: intervals and band coverage."""
    from rlscale.laws.bootstrap import (  # it imports this module
        bootstrap_protocol,
        coverage,
        describe_method,
    )

    boot = bootstrap_protocol(result, table, n=n, seed=seed, level=level, warmup=warmup,
                              progress=True)
    try:
        held_out, why = coverage(boot, result.heldout), None
    except LawError as err:  # intervals stand; the band of an unseen size could not be made
        held_out, why = None, str(err)
    return {"n": len(boot.replicates), "failed": boot.n_failed, "seed": seed, "level": level,
            "resampling": describe_method(boot),
            "intervals": boot.intervals(sorted({*result.train_sizes, *result.heldout["N"]})),
            "coverage": held_out, "coverage_note": why}
