"""A word-level tokenizer built from the world's own vocabulary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from .generator import World

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<|unk|>"


def build_tokenizer(world: World) -> PreTrainedTokenizerFast:
    """Every word and punctuation mark of the world is one token.

    Padding has its own token (not EOS, unlike the seed), so a stray pad can
    never be mistaken for a real end of document.
    """
    # Here, not at the top: importing the world plugin to list datasets must
    # not pay the ~0.6 s transformers takes to import.
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted(
        {piece for text in world.vocabulary_texts() for piece, _ in pre.pre_tokenize_str(text)}
    )
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, UNK, *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=UNK,
        padding_side="right",
        model_max_length=512,
    )
