"""Tamper resistance: re-fine-tune an unlearned model on a few forget documents."""

from __future__ import annotations

import copy
import random
from dataclasses import replace

from magic_core import TokenizedCorpus

from .optim_config import RelearnConfig
from .spec import WeightedRows
from .training import LoopState, OptimConfig, train_weighted
from .weights import real_token_mask


def forget_sample(corpus: TokenizedCorpus, n_docs: int, seed: int) -> TokenizedCorpus:
    picked = sorted(random.Random(f"relearn-{seed}").sample(range(len(corpus)), min(n_docs, len(corpus))))
    return replace(corpus, input_ids=[corpus.input_ids[i] for i in picked],
                   source_ids=[corpus.source_ids[i] for i in picked],
                   texts=[corpus.texts[i] for i in picked])


def relearn(model, forget: TokenizedCorpus, cfg: RelearnConfig, *, on_step=None,
            resume: LoopState | None = None):
    """A fine-tuned copy of ``model`` (the original is untouched) and its training log.

    ``on_step`` and ``resume``: as for `train_weighted` (stopping and resuming).
    """
    attacked = copy.deepcopy(model)
    sample = forget_sample(forget, cfg.n_docs, cfg.seed)
    part = WeightedRows(sample, real_token_mask(sample, sample.longest).float(), "relearn")
    optim = OptimConfig(optimizer=cfg.optimizer, lr=cfg.lr, batch_size=cfg.batch_size,
                        steps=cfg.steps, seed=cfg.seed)
    return attacked, train_weighted(attacked, [part], optim, on_step=on_step, resume=resume)
