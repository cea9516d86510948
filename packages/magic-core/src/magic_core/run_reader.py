"""The one reader of a finished attribution run: manifest, scores and documents, checked.

Whatever reads a run directory (`magic report`, `magic status`, the scores of
`magic unlearn`) reads it through `read_run`, so that a run damaged after it
was written (a truncated or edited file, a manifest that is not JSON or lost a
key, a file deleted) is refused in one line naming the file and the fix, the
same way everywhere, instead of failing later inside safetensors, pyarrow or a
KeyError.

Checked: the manifest is a JSON object whose known keys have their types; the
scores and documents files exist, their headers are readable, and the tensors'
shapes and dtype and the documents' row count agree with each other and with
the manifest; with ``load=True`` also the sha256 digests the manifest records
(manifests of older versions have none), so that an edited value is caught.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .output_names import DIGESTS, DOCUMENTS, MANIFEST, SCORES

if TYPE_CHECKING:  # status reads manifests without paying for torch
    import torch

# Known manifest keys -> accepted types, checked when present. A key written by
# every version a reader needs is listed in `read_run`'s ``need``.
_NUMBER = (int, float)
_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": int, "config": dict, "fingerprints": dict, "query": dict, "shapes": dict,
    "corpus": dict, "training": dict, "timings": dict, "scores_dtype": str, DIGESTS: dict,
    "fingerprints.dataset": str, "fingerprints.tokenizer": str, "fingerprints.documents": int,
    "fingerprints.token_rows": int, "query.before_training": _NUMBER,
    "query.after_training": _NUMBER, "shapes.per_example": list,
    "shapes.per_token": (list, type(None)), "corpus.documents": int,
    "corpus.max_seq_len": int, "corpus.truncated": int, "training.steps": int,
    "timings.total": _NUMBER,
}
FORMAT = 1


class DamagedRun(ConfigError):
    """A run directory whose files no longer agree with what was written."""


@dataclass
class FinishedRun:
    path: Path
    manifest: dict
    per_example: torch.Tensor | None = None  # loaded with ``load=True``
    per_token: torch.Tensor | None = None
    scores_metadata: dict = field(default_factory=dict)

    def documents(self):
        """The document table (pyarrow), read and checked against the scores."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(self.path / DOCUMENTS)
        except (OSError, pa.ArrowException) as exc:
            raise _damaged(self.path, DOCUMENTS, f"is unreadable ({_why(exc)})") from None


def fix(run_dir: Path) -> str:
    return (f"rerun the `magic attribute` job that wrote it with --out {run_dir} --restart to "
            "rebuild it")


def _why(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _damaged(run_dir: Path, name: str, problem: str) -> DamagedRun:
    return DamagedRun(f"run directory {run_dir} is damaged: {name} {problem}; {fix(run_dir)}")


def _lookup(manifest: dict, dotted: str):
    value = manifest
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return ...
        value = value[part]
    return value


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("null" if t is type(None) else t.__name__ for t in types)


def read_manifest(run_dir: Path, need: tuple[str, ...] = ()) -> dict:
    """The manifest as a dict whose known keys have their types; ``need``: dotted keys it must have."""
    path = run_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DamagedRun(f"{run_dir} is not a finished attribution run (no {MANIFEST}); run "
                         "`magic attribute` into it first") from None
    except (OSError, ValueError) as exc:
        raise _damaged(run_dir, MANIFEST, f"is not readable JSON ({_why(exc)})") from None
    if not isinstance(manifest, dict):
        raise _damaged(run_dir, MANIFEST, "is not a JSON object")
    for key in need:
        if _lookup(manifest, key) is ...:
            raise _damaged(run_dir, MANIFEST, f"lacks the key {key!r}")
    for key, types in _TYPES.items():
        value = _lookup(manifest, key)
        # bool is an int to isinstance; no count or number in a manifest is one.
        if value is not ... and (not isinstance(value, types) or isinstance(value, bool)):
            raise _damaged(run_dir, MANIFEST, f"has {key} = {json.dumps(value)[:40]}, not of type "
                           f"{_type_name(types)}")
    if manifest.get("format", FORMAT) != FORMAT:
        raise _damaged(run_dir, MANIFEST, f"has format {manifest['format']}, this version reads "
                       f"format {FORMAT}")
    return manifest


def _scores_header(run_dir: Path) -> tuple[dict[str, tuple[list[int], str]], dict]:
    """Name -> (shape, dtype) of each tensor of the scores file, from its header alone."""
    from safetensors import safe_open

    try:
        with safe_open(str(run_dir / SCORES), framework="pt") as handle:
            metadata = handle.metadata() or {}
            header = {}
            for name in handle.keys():
                piece = handle.get_slice(name)
                header[name] = (list(piece.get_shape()), str(piece.get_dtype()))
    except Exception as exc:  # safetensors raises its own error types, and OSError
        raise _damaged(run_dir, SCORES, f"is unreadable ({_why(exc)})") from None
    return header, metadata


_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def _check_shapes(run_dir: Path, manifest: dict, header: dict, documents: int | None) -> None:
    if "per_example" not in header:
        raise _damaged(run_dir, SCORES, "has no per_example scores")
    shapes = manifest.get("shapes", {})
    recorded = {"per_example": shapes.get("per_example", ...),
                "per_token": shapes.get("per_token", ...)}
    for name in ("per_example", "per_token"):
        actual = header[name][0] if name in header else None
        if recorded[name] is not ... and recorded[name] != actual:
            raise _damaged(run_dir, SCORES, f"holds {name} of shape {actual} but {MANIFEST} "
                           f"records {recorded[name]}")
    n = header["per_example"][0]
    if len(n) != 1:
        raise _damaged(run_dir, SCORES, f"holds per_example of shape {n}, not one score per row")
    if "per_token" in header:
        rows, *width = header["per_token"][0]
        if rows != n[0] or len(width) != 1:
            raise _damaged(run_dir, SCORES, f"holds per_token of shape {header['per_token'][0]} "
                           f"for {n[0]} rows")
        longest = manifest.get("corpus", {}).get("max_seq_len")
        if longest is not None and width[0] > longest:
            raise _damaged(run_dir, SCORES, f"holds per_token scores {width[0]} tokens wide but "
                           f"{MANIFEST} records max_seq_len {longest}")
    counted = manifest.get("corpus", {}).get("documents")
    if counted is not None and counted != n[0]:
        raise _damaged(run_dir, SCORES, f"scores {n[0]} rows but {MANIFEST} records "
                       f"{counted} documents")
    if documents is not None and documents != n[0]:
        raise _damaged(run_dir, DOCUMENTS, f"has {documents} rows but {SCORES} scores {n[0]}")
    dtype = manifest.get("scores_dtype")
    actual = _DTYPES.get(header["per_example"][1], header["per_example"][1])
    if dtype is not None and dtype != actual:
        raise _damaged(run_dir, SCORES, f"holds {actual} scores but {MANIFEST} records {dtype}")


def _document_rows(run_dir: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(run_dir / DOCUMENTS).num_rows
    except (OSError, pa.ArrowException) as exc:
        raise _damaged(run_dir, DOCUMENTS, f"is unreadable ({_why(exc)})") from None


def _verify_digest(run_dir: Path, name: str, data: bytes, digests: dict) -> None:
    recorded = digests.get(name)
    if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
        raise _damaged(run_dir, name, f"was changed after the run wrote it (its sha256 is not "
                       f"the one {MANIFEST} records)")


def read_run(run_dir: str | Path, *, need: tuple[str, ...] = (), documents: bool = True,
             load: bool = True) -> FinishedRun:
    """A finished attribution run, checked (see the module); raises `DamagedRun`.

    ``need``: dotted manifest keys the caller uses. ``documents``: the run must
    have its document table. ``load``: read the scores (and verify digests);
    without it only headers are read, which is cheap whatever the run's size.
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir, need)
    wanted = [SCORES] + ([DOCUMENTS] if documents else [])
    missing = [name for name in wanted if not (run_dir / name).is_file()]
    if missing:
        raise DamagedRun(f"run directory {run_dir} is damaged: it has {MANIFEST} but lacks "
                         f"{', '.join(missing)}; {fix(run_dir)}")
    header, metadata = _scores_header(run_dir)
    _check_shapes(run_dir, manifest, header, _document_rows(run_dir) if documents else None)
    run = FinishedRun(run_dir, manifest, scores_metadata=metadata)
    if not load:
        return run
    digests = manifest.get(DIGESTS, {})
    data = (run_dir / SCORES).read_bytes()
    _verify_digest(run_dir, SCORES, data, digests)
    if documents:
        _verify_digest(run_dir, DOCUMENTS, (run_dir / DOCUMENTS).read_bytes(), digests)
    from safetensors.torch import load as load_tensors

    tensors = load_tensors(data)
    run.per_example, run.per_token = tensors["per_example"], tensors.get("per_token")
    return run
