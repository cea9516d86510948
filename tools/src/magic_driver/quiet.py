"""`--quiet` for the libraries under us: their progress bars off for one block.

transformers draws "Loading weights" / "Writing model shards" bars in
from_pretrained / save_pretrained and datasets draws one per map/filter;
their own public switches turn them off (the hub's bars follow transformers').
Each switch is restored afterwards, so a caller that embeds the driver keeps
its own setting.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def library_progress_bars(enabled: bool) -> Iterator[None]:
    if enabled:
        yield
        return
    import datasets
    from transformers.utils import logging as hf_logging

    transformers_was_on = hf_logging.is_progress_bar_enabled()
    datasets_was_on = not datasets.utils.are_progress_bars_disabled()
    # An HF_*_DISABLE_PROGRESS_BARS=0 in the environment wins over code, with a
    # warning from the library; that explicit choice needs no second notice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf_logging.disable_progress_bar()
        datasets.utils.disable_progress_bars()
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if transformers_was_on:
                hf_logging.enable_progress_bar()
            if datasets_was_on:
                datasets.utils.enable_progress_bars()
