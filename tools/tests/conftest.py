"""Fixtures of the driver tests: a real one-node Slurm cluster (tests marked `slurm`)."""

from __future__ import annotations

import fcntl
import sys
import tempfile
from pathlib import Path

import pytest

# Several pytest-xdist workers may reach the Slurm tests at once; one cluster
# at a time may run on the machine (one host name, one node).
LOCK = Path(tempfile.gettempdir()) / "magic-driver-slurm-tests.lock"


def _slurm_module():
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        import slurm_cluster
    finally:
        sys.path.remove(here)
    return slurm_cluster


@pytest.fixture
def slurm(tmp_path_factory):
    """A started cluster of one test, stopped after it (starting one takes a second or two),
    so that another worker waits for one test at most."""
    module = _slurm_module()
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cluster = module.LocalSlurm(tmp_path_factory.mktemp("slurm"))
        try:
            cluster.start()
        except module.SlurmUnavailable as exc:
            cluster.stop()
            pytest.fail(f"no Slurm cluster can run on this machine: {exc}", pytrace=False)
        try:
            yield cluster
        finally:
            cluster.stop()
