"""What `magic pretrain` may be asked for: sizes and training length, checked before any work.

Kept apart from pretrain.py so that the command's --help reads these
defaults without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from magic_core import ConfigError
from magic_datasets.mcqa import LETTERS

BYTES = 256  # byte-level BPE starts from every byte, so no text is ever unknown
SPECIAL = 2  # padding and end of document
MIN_VOCAB = BYTES + SPECIAL + len(LETTERS)  # the answer letters are tokens of their own


@dataclass(frozen=True)
class PretrainSettings:
    vocab_size: int = 1024
    layers: int = 2
    width: int = 64
    heads: int = 4
    seq_len: int = 64
    steps: int = 200
    batch_size: int = 16
    lr: float = 3e-3
    seed: int = 0


def check_settings(settings: PretrainSettings, out: Path) -> None:
    """Refuse impossible settings and an occupied ``out`` before any loading."""
    if settings.vocab_size < MIN_VOCAB:
        raise ConfigError(f"--vocab-size {settings.vocab_size} is too small; use at least "
                          f"{MIN_VOCAB} ({BYTES} bytes, {SPECIAL} special tokens, "
                          f"{len(LETTERS)} answer letters)")
    if settings.width % settings.heads:
        raise ConfigError(f"--width {settings.width} is not a multiple of --heads "
                          f"{settings.heads}; e.g. --width {settings.heads * 16}")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise ConfigError(f"--out {out} already exists; remove it or choose another directory")
