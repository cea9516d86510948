"""Cluster profiles: what a job script needs on one cluster and not in any job file.

A profile is a YAML file ``NAME.yaml`` in ``$MAGIC_CLUSTER_CONFIG`` (a folder)
or, without it, in ``$XDG_CONFIG_HOME/magic/clusters`` (default
``~/.config/magic/clusters``)::

    description: 4x GH200 nodes
    partition: gpu
    account: my-project
    activate_env: false                     # true: activate the environment magic runs from
    setup:                                  # shell lines run before the job
      - module load PrgEnv-cray cuda/12.6
      - source $HOME/venvs/magic/bin/activate
    sbatch: ["--constraint=gh200"]          # extra #SBATCH options of every job
    srun: ["--cpu-bind=none"]               # extra srun options

Built in: ``local`` (this machine's Slurm, in the Python environment `magic`
runs from) and the examples shipped in ``cluster_profiles/`` (``gh200``, the
seed pipeline's nodes, and ``generic``). A user file of the same name replaces
a built-in profile; `init_profile` writes one to start from.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import sys
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import yaml
from magic_core import ConfigError, from_mapping, to_mapping
from magic_core.atomic import write_text
from magic_core.memory import parse_bytes
from magic_core.typed_config import setting

LOCAL = "local"
BUILT_IN = "built-in"
DEFAULT_TEMPLATE = "generic"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _size_problem(text: str) -> str | None:
    try:
        parse_bytes(text, "a size")
    except ValueError:
        return f"cannot read {text!r} as a size; write e.g. 96GB or 480GiB"
    return None


@dataclass(frozen=True)
class ClusterProfile:
    """What a job script needs on one cluster and not in any job file."""

    description: str = ""
    """One line for `magic clusters list`."""
    partition: str | None = None
    """The partition of jobs whose ``slurm.partition`` is null; null: the cluster's default."""
    account: str | None = None
    """The account of jobs whose ``slurm.account`` is null; null: the cluster's default."""
    # Resolved when loading, so a profile shown by `magic clusters show` renders the
    # same script when saved as a file.
    activate_env: bool = False
    """true: the job first activates the Python environment `magic submit` runs from
    (loading puts that line first in ``setup`` and sets this to false)."""
    setup: list[str] = field(default_factory=list)
    """Shell lines run before the job, e.g. ``module load cuda/12.6``."""
    sbatch: list[str] = field(default_factory=list)
    """Extra ``#SBATCH`` options of every job, e.g. ``["--constraint=gh200"]``."""
    srun: list[str] = field(default_factory=list)
    """Extra srun options, e.g. ``["--cpu-bind=none"]``."""
    magic: str = "magic"
    """The driver command on the compute nodes (after ``setup``)."""
    gpu: str | None = None
    """The GPU model of the nodes, e.g. ``GH200`` or ``H100``: `magic plan`'s assumed speed
    (null: not known)."""
    gpu_memory: str | None = setting(None, check=_size_problem)
    """Memory of one GPU, e.g. ``96GB``, which `magic plan` checks a job's peak against (null:
    not known)."""
    node_memory: str | None = setting(None, check=_size_problem)
    """Host memory of one node, e.g. ``480GB``: what `magic plan` takes the host tier
    (``attribution.host_memory: auto``) and a node's processes from when the job's
    ``slurm.mem`` is null (null: not known)."""


def profile_dir() -> Path:
    if os.environ.get("MAGIC_CLUSTER_CONFIG"):
        return Path(os.environ["MAGIC_CLUSTER_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "magic" / "clusters"


def _activation() -> list[str]:
    if sys.prefix == sys.base_prefix:  # not a virtual environment: nothing to activate
        return []
    return [f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}"]


def local_profile() -> ClusterProfile:
    """This machine, in the Python environment running `magic` now."""
    return ClusterProfile(
        description="this machine's Slurm, in the Python environment magic runs from",
        setup=_activation(),
    )


def _shipped() -> dict[str, str]:
    """The example profiles shipped with magic: name -> YAML text (comments included)."""
    folder = resources.files(__package__) / "cluster_profiles"
    return {entry.name[: -len(".yaml")]: entry.read_text()
            for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def _user_files() -> dict[str, Path]:
    folder = profile_dir()
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def built_in_names() -> list[str]:
    return sorted([LOCAL, *_shipped()])


def profile_sources() -> dict[str, str]:
    """Every known profile name -> where it comes from (its file, or 'built-in'), by name."""
    found = dict.fromkeys(built_in_names(), BUILT_IN)
    found.update({name: str(path) for name, path in _user_files().items()})
    return dict(sorted(found.items()))


def _unknown(name: str, sources: dict[str, str]) -> ConfigError:
    close = difflib.get_close_matches(name, list(sources), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(sources))}"
    return ConfigError(f"unknown cluster profile {name!r} (looked in {profile_dir()} and the "
                       f"built-in ones); {hint}; `magic clusters init {name}` writes one")


def profile_text(name: str) -> str:
    """The YAML a profile is defined by: its file, or for `local` its settings."""
    user, shipped = _user_files(), _shipped()
    if name in user:
        return user[name].read_text()
    if name in shipped:
        return shipped[name]
    if name == LOCAL:
        return yaml.safe_dump(to_mapping(local_profile()), sort_keys=False)
    raise _unknown(name, profile_sources())


def load_profile(name: str) -> ClusterProfile:
    sources = profile_sources()
    if name not in sources:
        raise _unknown(name, sources)
    if name == LOCAL and sources[name] == BUILT_IN:
        return local_profile()
    where = sources[name] if sources[name] != BUILT_IN else f"built-in profile {name!r}"
    try:
        data = yaml.safe_load(profile_text(name)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        profile = from_mapping(ClusterProfile, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if profile.activate_env:
        profile = replace(profile, activate_env=False, setup=[*_activation(), *profile.setup])
    return profile


def init_profile(name: str, template: str = DEFAULT_TEMPLATE, force: bool = False) -> Path:
    """Write profile ``name`` (a copy of ``template``) into the profile folder to edit."""
    if not _NAME.match(name):
        raise ConfigError(f"cluster profile name {name!r}: use letters, digits, '.', '_' and '-' "
                          f"(it becomes the file name NAME.yaml)")
    load_profile(template)  # a broken template is refused before anything is written
    path = profile_dir() / f"{name}.yaml"
    if path.exists() and not force:
        raise ConfigError(f"{path} exists; edit it, or add --force to replace it with a copy of "
                          f"{template!r}")
    write_text(path, profile_text(template))
    return path
