"""One loading path for real Hugging Face checkpoints and the miniature ladder: safetensors only."""

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from rlscale.errors import DataError


def save_model(model: PreTrainedModel, tokenizer, path: str | Path) -> Path:
    """save_pretrained of model (safetensors) and tokenizer into `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # rlscale shows its own progress
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def load_model(path: str | Path, *, dtype: torch.dtype | None = None, device: str = "cpu"):
    """(model, tokenizer) from a local directory; the model in eval mode, the tokenizer padding
    on the left (generation appends on the right) with a pad token (eos if it had none)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise DataError("model directory not found", path=path)
    if not any(path.glob("*.safetensors")):
        # Pickled .bin weights can run code on load; we never read them.
        raise DataError("no *.safetensors weights (only safetensors checkpoints are loaded)", path=path)
    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(
        path, use_safetensors=True, dtype=dtype or torch.float32
    ).to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
