"""Which rows of a source a run uses: the length filter and first / random / window.

Selections are index arithmetic on the loaded split, so they are cheap and
a seed names the same rows on every machine.
"""

from __future__ import annotations

import random

import datasets

from ..errors import DatasetError

FIRST, RANDOM, LENGTH_WINDOW = "first", "random", "length-window"
SELECTIONS = (FIRST, RANDOM, LENGTH_WINDOW)

#: loader options every hub corpus accepts, with their defaults
SELECTION_OPTIONS = {"n": None, "select": FIRST, "seed": 0, "window_start": 0.25}
SELECTION_HELP = (
    "n rows (None: all) chosen by select: 'first', 'random' (seeded by seed) or "
    "'length-window' (the seed runs' choice: rows sorted by text length, n of them "
    "starting at window_start of the way through)"
)


def keep_longer_than(dataset: datasets.Dataset, min_chars: int, column: str = "text"):
    """Rows whose stripped text has more than ``min_chars`` characters (the seed's filter)."""
    if min_chars <= 0:
        return dataset
    return dataset.filter(lambda batch: [len(t.strip()) > min_chars for t in batch[column]],
                          batched=True, desc=f"texts over {min_chars} chars")


def select_rows(
    dataset: datasets.Dataset, name: str, n: int | None = None, select: str = FIRST,
    seed: int = 0, window_start: float = 0.25, column: str = "text", after: str = "",
) -> datasets.Dataset:
    """``n`` rows of ``dataset`` by the ``select`` rule; refuses to return fewer.

    ``after`` names what was done before (e.g. the filter) for the error message.
    """
    if select not in SELECTIONS:
        raise DatasetError(f"{name}: select must be one of {', '.join(SELECTIONS)}, got {select!r}")
    if n is not None and n < 1:
        raise DatasetError(f"{name}: n must be >= 1 (or null for all rows), got {n}")
    total = len(dataset)
    count = total if n is None else n
    if select == LENGTH_WINDOW:
        if not 0.0 <= window_start < 1.0:
            raise DatasetError(f"{name}: window_start must be in [0, 1), got {window_start}")
        lengths = [len(t) for t in dataset[column]]
        order = sorted(range(total), key=lambda i: (lengths[i], i))
        start = int(total * window_start) if n is not None else 0
        indices = order[start:start + count]
    elif select == RANDOM:
        indices = random.Random(seed).sample(range(total), min(count, total))
    else:
        indices = list(range(min(count, total)))
    if len(indices) < count:
        where = f" from {start} on" if select == LENGTH_WINDOW else ""
        raise DatasetError(
            f"{name}: asked for n={count} rows but the selection{where} leaves only "
            f"{len(indices)} of {total}{(' ' + after) if after else ''}; lower n"
            + (" or window_start" if select == LENGTH_WINDOW else "")
        )
    return dataset.select(indices)
