"""Job files shipped with the driver: the seed pipeline's eight cluster jobs.

Each ``NAME.yaml`` here is an ordinary job file; its first comment line
describes it. Anywhere a job file is accepted, ``preset:NAME`` names one
(``magic submit preset:attr-wikitext``); ``magic presets show NAME > job.yaml``
gives an editable copy.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources

import yaml
from magic_core import ConfigError

PREFIX = "preset:"


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # attribute | unlearn
    description: str
    text: str

    def mapping(self) -> dict:
        return yaml.safe_load(self.text) or {}


def _files() -> dict[str, str]:
    folder = resources.files(__name__)
    return {entry.name[: -len(".yaml")]: entry.read_text()
            for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def _describe(text: str) -> str:
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    return first.lstrip("#").strip() if first.startswith("#") else ""


def list_presets() -> list[Preset]:
    presets = []
    for name, text in sorted(_files().items()):
        kind = (yaml.safe_load(text) or {}).get("kind", "attribute")
        presets.append(Preset(name, kind, _describe(text), text))
    return presets


def get_preset(name: str) -> Preset:
    name = name.removeprefix(PREFIX)
    presets = {p.name: p for p in list_presets()}
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "see `magic presets list`"
        raise ConfigError(f"unknown preset {name!r}; {hint}")
    return presets[name]


def is_preset_reference(source: str) -> bool:
    return str(source).startswith(PREFIX)
