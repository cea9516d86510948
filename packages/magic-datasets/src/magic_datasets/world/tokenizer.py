"""A word-level tokenizer built from the world's own vocabulary."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from .generator import World

PAD, EOS, UNK = "<|pad|>", "<|endoftext|>", "<|unk|>"


def build_tokenizer(world: World) -> PreTrainedTokenizerFast:
    """Every word and punctuation mark of the world is one token.

    Padding has its own token (not EOS, unlike the seed), so a stray pad can
    never be mistaken for a real end of document.
    """
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
