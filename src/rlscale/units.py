"""Units shared by the laws, the report and the CLI: model sizes and the paper's compute.

Sizes are written three ways: a JSON key (`size_key`, exact: '500000000.0'), a short label
(`format_size`: '1.5B') and the CLI's input ('0.5B,7B,3e9': `parse_sizes`). The paper's compute is
C = 6 N T (`training_flops`; generation and attention not counted, see docs/accounting.md).

The compute lives here rather than in `rlscale.models.flops` because the laws need it and must not
import `rlscale.models` (its package imports torch and transformers); models.flops calls it too.
This module imports nothing from rlscale, so any layer may use it.
"""

from __future__ import annotations

SIZE_UNITS = (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3))
FLOPS_PER_PARAM_TOKEN = 6  # C = 6 N T: forward (2) + backward (4) FLOPs per parameter per token


def size_key(N: float) -> str:
    """How a model size is written as a JSON key (as in the paper's reference.json: '500000000.0')."""
    return repr(float(N))


def format_size(N: float, digits: int = 4) -> str:
    """A short human label for a size with `digits` significant digits: 1.5e9 -> '1.5B',
    5e8 -> '500M', 1.5e12 -> '1.5T'. `parse_size` reads every label back (to `digits`)."""
    for unit, scale in SIZE_UNITS:
        if abs(N) >= scale:
            return f"{N / scale:.{digits}g}{unit}"
    return f"{N:.{digits}g}"


def parse_size(text: str) -> float:
    """'0.5B' -> 5e8, '7b' -> 7e9, '3e9' -> 3e9, '1.2M' -> 1.2e6; ValueError if not a size."""
    item = text.strip()
    scale = dict(SIZE_UNITS).get(item[-1:].upper())
    try:
        return float(item[:-1]) * scale if scale else float(item)
    except ValueError:
        raise ValueError(f"size '{item}' is not a number (e.g. 5e8 or 0.5B)") from None


def parse_sizes(text: str | None) -> list[float] | None:
    """'0.5B,1.5B,3e9' -> [5e8, 1.5e9, 3e9]; None for no text; empty items are skipped."""
    if not text:
        return None
    return [parse_size(item) for item in filter(None, (part.strip() for part in text.split(",")))]


def training_flops(N, tokens):
    """The paper's compute C = 6 N T for N parameters and T tokens (prompt + response); numbers
    or arrays."""
    return FLOPS_PER_PARAM_TOKEN * N * tokens


def training_tokens(N, flops):
    """The inverse of `training_flops`: the tokens T = C / (6 N) that C FLOPs buy at size N."""
    return flops / (FLOPS_PER_PARAM_TOKEN * N)
