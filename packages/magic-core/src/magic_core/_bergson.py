"""Import bergson's MAGIC engine without letting it take over logging.

``import bergson`` runs ``logging.basicConfig(force=True)``, which would close
the user's root handlers and redirect INFO logs to stdout. The engine is
imported lazily (it is slow to import) with basicConfig disabled, and the
root logger's handlers and level are put back as they were.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from types import SimpleNamespace


@lru_cache(maxsize=1)
def engine() -> SimpleNamespace:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    original_basic_config = logging.basicConfig
    logging.basicConfig = lambda *args, **kwargs: None
    try:
        from bergson.magic.data_stream import DataStream
        from bergson.magic.fsdp import simple_fsdp
        from bergson.magic.shard_load import chunk_bounds
        from bergson.magic.trainer import BackwardState, Trainer, TrainerState
        from bergson.utils.math import weighted_causal_lm_ce
    finally:
        logging.basicConfig = original_basic_config
        root.handlers[:] = handlers
        root.setLevel(level)
    return SimpleNamespace(
        DataStream=DataStream,
        Trainer=Trainer,
        TrainerState=TrainerState,
        BackwardState=BackwardState,
        weighted_causal_lm_ce=weighted_causal_lm_ce,
        simple_fsdp=simple_fsdp,
        chunk_bounds=chunk_bounds,
    )
