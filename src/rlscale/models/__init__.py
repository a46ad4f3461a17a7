"""rlscale.models: the miniature ladder's shapes and tokenizer, loading, parameter and FLOP
counting, scoring responses, training states on disk. (Pretraining the family: `rlscale.pretrain`.)"""

from rlscale.models.ladder import LADDER, ModelSpec, build_model, get_spec, ladder_names
from rlscale.models.loading import load_model, save_model
from rlscale.models.params import ParamCount, count_params
from rlscale.models.tokenizer import build_tokenizer

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
]
