"""Where a hub-backed dataset's rows come from: the hub, or a local copy of it.

Both paths end in `datasets.load_dataset`, so a local copy is read by the
same code users hit on a cluster. A local copy is a folder laid out like the
hub repository (``DATA_DIR/<owner>/<name>/<config>/<split>-*.parquet`` and
the like), chosen with the loader option ``data_dir`` or ``$MAGIC_DATA_DIR``;
that is how tests and air-gapped machines run without the network.

Without a local copy, offline mode (HF_HUB_OFFLINE) reads only the Hugging
Face cache, and otherwise one short probe of the hub comes first: either way
a hub that cannot answer is one line at once, not `datasets`' retries.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import datasets

from ..errors import DatasetError

DATA_DIR_ENV = "MAGIC_DATA_DIR"
# Long enough for a slow link to answer, short next to the ~25 s of retries
# `datasets` spends before it gives up on an unreachable hub.
PROBE_TIMEOUT_S = 3.0
# Preference order when a folder holds the same split in several formats.
FORMATS = (("parquet", "parquet"), ("jsonl", "json"), ("json", "json"))


@dataclass(frozen=True)
class HubSource:
    """One split of one config of a hub dataset."""

    hub_id: str
    config: str | None
    split: str
    revision: str | None = None
    gated: bool = False
    access_url: str = ""

    def describe(self) -> str:
        config = f" {self.config}" if self.config else ""
        revision = f"@{self.revision}" if self.revision else ""
        return f"{self.hub_id}{config} [{self.split}]{revision}"


def _candidates(source: HubSource, root: Path) -> list[Path]:
    """Folders a hub repo keeps one split's files in, most specific first."""
    return ([root / source.config] if source.config else []) + [root / "data", root]


def local_files(source: HubSource, data_dir: Path) -> tuple[str, list[str]]:
    """The `load_dataset` builder and files of ``source`` in a local copy."""
    root = data_dir / source.hub_id
    if not root.is_dir():
        raise DatasetError(
            f"no local copy of {source.hub_id} in {data_dir} (expected folder {root}); "
            f"put the hub files there or unset {DATA_DIR_ENV} / data_dir to download from the hub"
        )
    for folder in _candidates(source, root):
        for suffix, builder in FORMATS:
            files = sorted(folder.glob(f"{source.split}-*.{suffix}")) + sorted(
                folder.glob(f"{source.split}.{suffix}")
            )
            if files:
                return builder, [str(f) for f in files]
    where = root / (source.config or "data")
    raise DatasetError(
        f"no {source.split!r} files of {source.describe()} under {root}; expected e.g. "
        f"{where}/{source.split}-00000-of-00001.parquet (or .jsonl/.json), as on the hub"
    )


def has_hub_token() -> bool:
    import huggingface_hub

    return bool(huggingface_hub.get_token())


def hub_offline() -> bool:
    """HF_HUB_OFFLINE / HF_DATASETS_OFFLINE, as `datasets` itself reads them."""
    return bool(datasets.config.HF_HUB_OFFLINE)


@functools.cache
def unreachable_reason(endpoint: str) -> str | None:
    """Why ``endpoint`` does not answer within `PROBE_TIMEOUT_S`, or None if it does.

    One HEAD through huggingface_hub's own HTTP session (its proxies,
    certificates and headers), once per process: any HTTP status counts as
    reachable.
    """
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S)
    except Exception as exc:  # the session's transport errors are its HTTP library's own
        first = (str(exc).strip().splitlines() or [""])[0][:120]
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return None


def _offline_failure(source: HubSource, why: str, fix: str) -> DatasetError:
    return DatasetError(
        f"cannot load {source.describe()} from the hub: {why}; set data_dir / {DATA_DIR_ENV} "
        f"to a local copy laid out like the hub repo, {fix}"
    )


def _hub_failure(source: HubSource, exc: Exception) -> DatasetError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    if source.gated:
        fix = (f"check that your token has access ({source.access_url}), or point "
               f"{DATA_DIR_ENV} at a local copy")
    else:
        fix = (f"check the network / HF_DATASETS_OFFLINE and the hub cache, or point "
               f"{DATA_DIR_ENV} at a local copy")
    return DatasetError(
        f"cannot load {source.describe()} from the hub ({type(exc).__name__}: {first}); {fix}"
    )


def load_source(source: HubSource, data_dir: str | os.PathLike | None = None) -> datasets.Dataset:
    """The rows of ``source``, from a local copy if one is configured, else the hub."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if data_dir is not None:
        builder, files = local_files(source, Path(data_dir).expanduser())
        try:
            return datasets.load_dataset(builder, data_files={source.split: files},
                                         split=source.split)
        except (datasets.exceptions.DatasetGenerationError, ValueError, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise DatasetError(
                f"cannot read the local copy of {source.describe()} ({files[0]}: {first}); "
                "replace it with the hub's files"
            ) from None
    if source.gated and not has_hub_token():
        raise DatasetError(
            f"{source.hub_id} is gated and no Hugging Face token is set; run "
            f"`huggingface-cli login` or set HF_TOKEN; request access at {source.access_url}"
        )
    offline = hub_offline()
    if not offline:
        from huggingface_hub import constants

        reason = unreachable_reason(constants.ENDPOINT)
        if reason is not None:
            raise _offline_failure(
                source, f"{constants.ENDPOINT} is unreachable ({reason})",
                "set HF_HUB_OFFLINE=1 to use a copy in the Hugging Face cache, or check the "
                "network / proxy")
    try:
        return datasets.load_dataset(source.hub_id, source.config, split=source.split,
                                     revision=source.revision)
    except DatasetError:
        raise
    except (datasets.exceptions.DatasetsError, ConnectionError, OSError, ValueError) as exc:
        if offline:
            # Offline mode reads only the Hugging Face cache, so any failure means it is not there.
            raise _offline_failure(
                source, "offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the "
                "Hugging Face cache has no copy",
                "or unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE to download it") from None
        # Auth, missing repo/config/revision failures land here; huggingface_hub's
        # errors subclass OSError or ValueError.
        raise _hub_failure(source, exc) from None
