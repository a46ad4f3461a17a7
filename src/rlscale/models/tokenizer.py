"""The miniature ladder's tokenizer: one token per printable ASCII character.

Character level keeps the vocabulary tiny (99 tokens), so the embedding is a small part of even
the smallest model and arithmetic digits are never merged into multi-digit tokens.
"""

import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
# Printable ASCII (space .. ~) plus newline; other characters map to nothing (no unk token).
CHARSET = "\n" + "".join(chr(c) for c in range(32, 127))
assert set(string.digits) <= set(CHARSET)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A character-level fast tokenizer; encoding prepends <bos>, decoding joins characters."""
    vocab = {tok: i for i, tok in enumerate([PAD, BOS, EOS, *CHARSET])}
    # WordLevel over single characters: the Split pre-tokenizer isolates every character.
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    core.add_special_tokens([PAD, BOS, EOS])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="left",  # generation appends on the right
        model_max_length=4096,
    )
