"""rlscale.pretrain: the miniature family, pretrained the same way at every size (corpus,
supervised loop, shipped weights); beside `rl`, which post-trains it."""

from rlscale.pretrain.corpus import corpus_texts, flawed_solution, pretraining_corpus
from rlscale.pretrain.family import (
    FAMILY_CONFIG,
    VARIANTS,
    FamilyConfig,
    build_member,
    member_path,
    member_record,
    shipped_path,
)
from rlscale.pretrain.supervised import PretrainConfig, PretrainResult, pretrain

__all__ = [
    "FAMILY_CONFIG",
    "VARIANTS",
    "FamilyConfig",
    "PretrainConfig",
    "PretrainResult",
    "build_member",
    "corpus_texts",
    "flawed_solution",
    "member_path",
    "member_record",
    "pretrain",
    "pretraining_corpus",
    "shipped_path",
]
