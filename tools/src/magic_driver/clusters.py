"""Cluster profiles: what a job script needs on one cluster and not in any job file.

A profile is a YAML file ``NAME.yaml`` in ``$MAGIC_CLUSTER_CONFIG`` (a folder)
or, without it, in ``$XDG_CONFIG_HOME/magic/clusters`` (default
``~/.config/magic/clusters``)::

    description: 4x GH200 nodes
    partition: gpu
    account: my-project
    setup:                                  # shell lines run before the job
      - module load PrgEnv-cray cuda/12.6
      - source $HOME/venvs/magic/bin/activate
    sbatch: ["--constraint=gh200"]          # extra #SBATCH options of every job
    srun: ["--cpu-bind=none"]               # extra srun options

The built-in profile ``local`` (a file named local.yaml replaces it) runs on
this machine's Slurm with the Python environment `magic` runs from.
"""

from __future__ import annotations

import difflib
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from magic_core import ConfigError, from_mapping

LOCAL = "local"


@dataclass(frozen=True)
class ClusterProfile:
    description: str = ""
    partition: str | None = None  # default of jobs whose slurm.partition is unset
    account: str | None = None  # default of jobs whose slurm.account is unset
    setup: list[str] = field(default_factory=list)
    sbatch: list[str] = field(default_factory=list)
    srun: list[str] = field(default_factory=list)
    magic: str = "magic"  # the driver command on the compute nodes (after setup)


def profile_dir() -> Path:
    if os.environ.get("MAGIC_CLUSTER_CONFIG"):
        return Path(os.environ["MAGIC_CLUSTER_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "magic" / "clusters"


def local_profile() -> ClusterProfile:
    """This machine, in the Python environment running `magic` now."""
    setup = []
    if sys.prefix != sys.base_prefix:  # a virtual environment
        setup.append(f"source {shlex.quote(str(Path(sys.prefix) / 'bin' / 'activate'))}")
    return ClusterProfile(
        description="this machine's Slurm, in the Python environment magic runs from",
        setup=setup,
    )


def profile_sources() -> dict[str, str]:
    """Every known profile name -> where it comes from (a file, or 'built-in')."""
    found = {LOCAL: "built-in"}
    folder = profile_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = str(path)
    return found


def load_profile(name: str) -> ClusterProfile:
    sources = profile_sources()
    if name not in sources:
        close = difflib.get_close_matches(name, list(sources), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(sources))}"
        raise ConfigError(f"unknown cluster profile {name!r} (looked in {profile_dir()}); {hint}")
    if sources[name] == "built-in":
        return local_profile()
    path = Path(sources[name])
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    try:
        return from_mapping(ClusterProfile, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
