"""A scores run directory, accepted only for the corpus it was computed on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import magic_datasets as md
import torch
from magic_core import TokenizedCorpus
from magic_core.outputs import MANIFEST
from magic_core.run_reader import DamagedRun, read_run

from .errors import UnlearnError

# What `check_scores` compares a scores run by.
NEEDED = ("fingerprints.dataset", "fingerprints.tokenizer", "corpus.max_seq_len")


@dataclass
class ScoresRun:
    path: Path
    per_token: torch.Tensor  # [N, T]; column t scores the prediction of token t + 1
    manifest: dict

    @property
    def max_seq_len(self) -> int:
        return int(self.manifest["corpus"]["max_seq_len"])


def load_scores(run_dir: str | Path) -> ScoresRun:
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise UnlearnError(f"{run_dir} is not a complete scores run (no {MANIFEST}); "
                           "run `magic attribute` with granularity per-token first")
    try:
        run = read_run(run_dir, need=NEEDED, documents=False)
    except DamagedRun as exc:
        raise UnlearnError(f"scores {exc}") from None
    if run.per_token is None:
        raise UnlearnError(f"{run_dir} has per-example scores only; token weights need "
                           "attribution.granularity: per-token")
    return ScoresRun(run_dir, run.per_token.double(), run.manifest)


def check_scores(run: ScoresRun, dataset, tokenizer, corpus: TokenizedCorpus) -> None:
    """Refuse scores computed on other data, another tokenizer or another token layout.

    ``corpus`` is ``dataset`` tokenized with ``run.max_seq_len``.
    """
    prints = run.manifest.get("fingerprints", {})
    where = f"scores run {run.path}"
    if prints.get("dataset") != md.dataset_fingerprint(dataset):
        # What it was computed on, as its job recorded it, says more than the fingerprints.
        data = run.manifest.get("config", {}).get("data")
        read = (f"it read dataset {data.get('dataset')!r} with options {data.get('options', {})} "
                f"and n_docs {data.get('n_docs')}; " if isinstance(data, dict) else "")
        raise UnlearnError(f"{where} was computed on another corpus ({read}dataset fingerprint "
                           f"{prints.get('dataset')} != {md.dataset_fingerprint(dataset)}); "
                           "use the same dataset, options and n_docs as its attribution job")
    if prints.get("tokenizer") != md.tokenizer_fingerprint(tokenizer):
        raise UnlearnError(f"{where} used another tokenizer (fingerprint {prints.get('tokenizer')} "
                           f"!= {md.tokenizer_fingerprint(tokenizer)}); unlearn the model it attributed")
    n, width = run.per_token.shape
    if n != len(corpus) or width < corpus.longest:
        raise UnlearnError(f"{where} has per-token scores of shape [{n}, {width}] but the corpus "
                           f"tokenizes to {len(corpus)} rows of up to {corpus.longest} tokens")
