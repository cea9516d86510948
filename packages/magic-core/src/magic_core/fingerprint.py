"""Cheap, stable identities of what a run's numbers depend on (for checkpoint checks)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

import torch

from .sharding import whole_tensor


def digest(value) -> str:
    """sha256 of a JSON-able value (keys sorted), 16 hex digits."""
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def file_sha256(path) -> str:
    """Full sha256 of a file, read in 16 MiB chunks (states and scores can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def token_rows_digest(rows: Iterable[Iterable[int]]) -> str:
    """Identity of tokenized documents: the dataset and the tokenizer in one."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps(list(row), separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """Exact identity of (small) tensors: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def model_identity(params: Mapping[str, torch.Tensor]) -> str:
    """Identity of model weights from names, shapes, dtypes and two float64 sums per tensor.

    Hashing every byte of a multi-billion-parameter model would cost a minute
    per start; different weights (another checkpoint, another seed) differ in
    these sums. Rounded to 12 digits so that a reduction order that differs
    between kernels cannot make a run refuse its own checkpoint.
    """
    summary = []
    for name in sorted(params):
        p = whole_tensor(params[name]).detach()  # a sharded parameter's sums are of all shards
        floating = p.is_floating_point()
        total = float(p.sum(dtype=torch.float64)) if floating else float(p.double().sum())
        size = float(p.abs().sum(dtype=torch.float64)) if floating else float(p.double().abs().sum())
        summary.append([name, str(p.dtype), list(p.shape), f"{total:.12g}", f"{size:.12g}"])
    return digest(summary)
