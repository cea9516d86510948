"""Refusing text that the model's tokenizer cannot read, before any training.

A word-level tokenizer (the built-in world's) maps every word it does not
know to one unknown token. A run on such text trains and scores that one
token instead of the words, finishes normally, and its tables show the
original text, so nothing reveals it. `magic attribute` and `magic unlearn`
pass every text they tokenize (corpus, query, forget, retain, evaluation
questions) through `check_token_coverage`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from magic_core import ConfigError

# A tokenizer built for the text leaves only stray symbols unknown (the world's
# own corpus: none). Past 1 % the model sees a noticeable part of its input as
# one indistinguishable token, and scores land on that token, not on the words.
UNKNOWN_SHARE_LIMIT = 0.01


def unknown_share(rows: Iterable[Sequence[int]], tokenizer) -> float:
    """Share of the rows' non-special tokens that are the tokenizer's unknown token.

    Rows may contain special tokens (an appended EOS); they are not counted.
    """
    unk = tokenizer.unk_token_id
    # Byte-level BPE (GPT-2, Pythia) can encode any text; where such a tokenizer
    # names an unknown token at all, it is an alias of EOS/BOS, never produced by text.
    if unk is None or unk in (tokenizer.eos_token_id, tokenizer.bos_token_id):
        return 0.0
    special = set(tokenizer.all_special_ids) - {unk}
    unknown = total = 0
    for row in rows:
        row = list(row)
        unknown += row.count(unk)
        total += len(row) - sum(row.count(s) for s in special)
    return unknown / total if total else 0.0


def text_rows(texts: Iterable[str], tokenizer) -> list[list[int]]:
    """The texts' own tokens, as the objectives and evaluations encode them."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def pretrain_suggestion(dataset: str, options: dict) -> str:
    """The `magic pretrain` command (and job line) that gives a model able to read ``dataset``."""
    out = f"models/{dataset}"
    flags = "".join(f" --option {k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in options.items())
    return f"`magic pretrain {dataset}{flags} --out {out}` and model: {{path: {out}}}"


def check_token_coverage(what: str, rows: Iterable[Sequence[int]], tokenizer, model: str,
                         fix: str) -> None:
    """Raise `ConfigError` if more than `UNKNOWN_SHARE_LIMIT` of ``rows`` is unknown tokens.

    ``what`` names the text ("corpus 'my-data'"), ``model`` the job's model and
    ``fix`` a way to a model that can read it (`pretrain_suggestion`).
    """
    share = unknown_share(rows, tokenizer)
    if share > UNKNOWN_SHARE_LIMIT:
        raise ConfigError(
            f"{what}: {100 * share:.1f} % of tokens are {tokenizer.unk_token} under {model}'s "
            f"tokenizer (vocabulary of {len(tokenizer)}); use a model whose tokenizer covers "
            f"this text, e.g. {fix}"
        )
