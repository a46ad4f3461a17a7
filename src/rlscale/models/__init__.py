"""rlscale.models: the miniature ladder and tokenizer, loading, parameter and FLOP counting,
warm start (the `warmstart` function stays in `rlscale.models.warmstart`, so that the submodule
is not shadowed by a function of the same name)."""

from rlscale.models.ladder import LADDER, ModelSpec, build_model, get_spec, ladder_names
from rlscale.models.loading import load_model, save_model
from rlscale.models.params import ParamCount, count_params
from rlscale.models.tokenizer import build_tokenizer
from rlscale.models.warmstart import (
    WarmstartConfig,
    WarmstartResult,
    default_root,
    ensure_ladder_model,
)

__all__ = [
    "LADDER",
    "ModelSpec",
    "ParamCount",
    "build_model",
    "build_tokenizer",
    "count_params",
    "get_spec",
    "ladder_names",
    "load_model",
    "save_model",
    "WarmstartConfig",
    "WarmstartResult",
    "default_root",
    "ensure_ladder_model",
]
