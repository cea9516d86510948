"""What a dataset plugin declares: the public `DatasetSpec` record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import datasets


class Kind(str, Enum):
    """What the rows of a dataset are for.

    Each kind fixes the columns that `load` guarantees, so the core never has
    to guess a schema:

    - ``training-corpus``: ``id`` (str), ``text`` (str); a corpus to fine-tune
      on and attribute.
    - ``multiple-choice``: ``id``, ``question`` (str), ``choices`` (list of str),
      ``answer`` (int index into choices); a query / evaluation set.
    - ``lm``: ``id``, ``text``; a plain language-modelling query set.
    """

    TRAINING_CORPUS = "training-corpus"
    MULTIPLE_CHOICE = "multiple-choice"
    LM = "lm"


REQUIRED_COLUMNS: dict[Kind, tuple[str, ...]] = {
    Kind.TRAINING_CORPUS: ("id", "text"),
    Kind.MULTIPLE_CHOICE: ("id", "question", "choices", "answer"),
    Kind.LM: ("id", "text"),
}

#: How a row of each kind becomes model text, for specs that do not say.
KIND_TEXT: dict[Kind, str] = {
    Kind.TRAINING_CORPUS: "the `text` column",
    Kind.MULTIPLE_CHOICE: "`question` and `choices` as a multiple-choice prompt "
    "(magic_datasets.mcqa), answered by the letter of `answer`",
    Kind.LM: "the `text` column",
}


@dataclass(frozen=True)
class DatasetSpec:
    """One named dataset offered by a plugin.

    ``loader(**options)`` returns a `datasets.Dataset` with at least the
    columns its ``kind`` requires (extra columns are kept, e.g. the built-in
    world's ``planted`` flag). ``source`` says where rows come from (a hub id
    with config/split/revision, or ``"generated"``) and is shown by
    ``magic datasets list``; ``options`` documents the keyword arguments the
    loader accepts, with their defaults.
    """

    name: str
    kind: Kind
    loader: Callable[..., datasets.Dataset]
    description: str = ""
    source: str = "generated"
    license: str = ""
    gated: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # Documentation shown by `magic datasets show`; all optional, so plugins
    # written before these fields existed keep working.
    columns: dict[str, str] = field(default_factory=dict)  # column -> type
    size: str = ""  # rows in the full source, e.g. "868 questions"
    text: str = ""  # how a row becomes training text
    selection: str = ""  # which rows are kept (filters, first/random/window)
    access: str = ""  # how to get a gated dataset
    # Filled in by the registry: the distribution that registered the spec.
    package: str = ""
