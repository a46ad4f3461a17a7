"""report.json: everything the report states, machine-readable (same analysis, no new numbers).

Top-level keys: `findings` (number, title, verdict, evidence, numbers), `free_k` (x, N, k, ci, r2,
points), `protocols` (protocol, x, law, fully_out_of_sample, mape, rmse, r2, coverage), `laws`
(fitted parameters with 95% intervals and on-bound flags), `noise_floor`, `timing`, plus what the
numbers are about (`sizes`, `eval_set`, `estimator`, `warmup`). Non-finite numbers are written
as null (strict JSON).
"""

from __future__ import annotations

import math

import numpy as np

from rlscale import __version__
from rlscale.report.analysis import PAPER_LAW, Analysis
from rlscale.report.curves import prompt_order_effect


def _clean(value):
    """JSON-safe: numpy scalars to Python, non-finite floats to None, dict keys to strings."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _free_k(analysis: Analysis) -> list[dict]:
    return [{"x": x, "N": row.N, "k": row.k, "ci": [row.k_lo, row.k_hi], "r2": row.r2,
             "points": int(row.n), "E": row.E}
            for x, free in analysis.free.items() for row in free.itertuples(index=False)]


def _protocol(name: str, x: str, result, *, fully_out_of_sample: bool, coverage=None) -> dict:
    overall = result.errors["overall"]
    return {"protocol": name, "x": x, "law": result.law,
            "fully_out_of_sample": fully_out_of_sample, "mape": overall["mape"],
            "rmse": overall["rmse"], "r2": overall["r2"], "points": overall["n"],
            "coverage": coverage, "note": result.note,
            "by_size": {k: v["mape"] for k, v in result.errors["by_size"].items()}}


def _protocols(analysis: Analysis) -> list[dict]:
    rows = []
    def band(x, name):
        found = analysis.bands.get((x, name))
        return None if found is None else found.coverage

    for x in analysis.fits:
        if x in analysis.intra:
            rows.append(_protocol("intra", x, analysis.intra[x], fully_out_of_sample=True,
                                  coverage=band(x, "intra")))
        if x in analysis.intra_free:
            rows.append(_protocol("intra_free_lines", x, analysis.intra_free[x],
                                  fully_out_of_sample=True))
        for variant, result in (analysis.inter.get(x) or {}).items():
            rows.append(_protocol(f"inter_{variant}", x, result,
                                  fully_out_of_sample=not result.in_sample_parameters,
                                  coverage=band(x, f"inter_{variant}")))
        loso = analysis.loso.get(x)
        if loso is not None:
            for law, summary in loso.summary().items():
                rows.append({"protocol": "loso_refit_intercept", "x": x, "law": law,
                             "fully_out_of_sample": False, "mape": summary["mape"],
                             "rmse": summary["rmse"], "r2": summary["r2"],
                             "points": summary["folds"], "coverage": None,
                             "note": "E of the left-out size refitted"})
    return rows


def _laws(analysis: Analysis) -> list[dict]:
    out = []
    for x, fit in analysis.fits.items():
        boot = analysis.boot.get(x)
        intervals = boot.intervals() if boot is not None else {}
        params = {}
        for name in ("Kmax", "N0"):
            ci = intervals.get(name)
            params[name] = {"estimate": fit.params[name],
                            "ci": [ci["lo"], ci["hi"]] if ci else None,
                            "on_bound": name in fit.bounds_hit}
        params["E"] = {str(n): e for n, e in fit.params.get("E", {}).items()}
        out.append({"law": PAPER_LAW, "x": x, "params": params,
                    "r2_in_sample": fit.metrics.get("r2"),
                    "bootstrap_replicates": len(boot.replicates) if boot is not None else 0})
    return out


def _noise(analysis: Analysis) -> dict:
    noise = analysis.noise
    if noise is None or noise.empty:
        return {"per_size": [], "largest": None}
    per_size = noise.to_dict(orient="records")
    largest = per_size[-1]
    return {"per_size": per_size, "largest": {
        "N": largest["N"], "floor": largest["floor"], "gain": largest["gain"],
        "gain_over_floor": largest["gain_over_floor"]}}


def report_summary(analysis: Analysis, findings, *, timing: dict | None = None) -> dict:
    """The report's content as one JSON-ready dict."""
    df = analysis.table.df if hasattr(analysis.table, "df") else analysis.table
    estimators = sorted(df["estimator"].dropna().unique()) if "estimator" in df else []
    return _clean({
        "rlscale_version": __version__,
        "eval_set": analysis.split.eval_set,
        "estimator": ", ".join(estimators) or "sampled",
        "sizes": analysis.sizes,
        "warmup": analysis.warmup,
        "findings": [{"number": f.id, "title": f.claim, "verdict": f.verdict,
                      "evidence": f.evidence, "numbers": f.numbers} for f in findings],
        "free_k": _free_k(analysis),
        "protocols": _protocols(analysis),
        "laws": _laws(analysis),
        "noise_floor": _noise(analysis),
        "prompt_order": prompt_order_effect(analysis.split.order).to_dict(orient="records"),
        "rivals": {x: table.to_dict() for x, table in analysis.rivals.items()},
        "run_forecasts": [] if analysis.run_forecasts is None else
        analysis.run_forecasts.to_dict(orient="records"),
        "notes": list(analysis.notes),
        "timing": {k: round(v, 1) for k, v in (timing or {}).items()},
    })
