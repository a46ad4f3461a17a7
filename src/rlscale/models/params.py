"""Parameter counts: total and non-embedding, the N of the scaling laws."""

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ParamCount:
    total: int
    non_embedding: int


def count_params(model: nn.Module) -> ParamCount:
    """Count unique parameters; tied tensors once. Non-embedding drops the token embedding and an
    untied lm_head (a tied one is the embedding itself), as in Kaplan et al. and the paper."""
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding_ids = {id(model.get_input_embeddings().weight)}
    output = model.get_output_embeddings()
    if output is not None:
        embedding_ids.add(id(output.weight))
    embedding = sum(unique[i].numel() for i in embedding_ids if i in unique)
    return ParamCount(total=total, non_embedding=total - embedding)
