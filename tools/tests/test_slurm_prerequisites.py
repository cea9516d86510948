"""The Slurm tests skip, saying why, on a machine that cannot run their cluster, and fail
only when one that can does not start."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("slurm_cluster_under_test",
                                               Path(__file__).with_name("slurm_cluster.py"))
assert _SPEC is not None and _SPEC.loader is not None
slurm_cluster = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(slurm_cluster)


@pytest.fixture
def no_slurm(monkeypatch):
    """A root shell with none of the daemons installed; apt-get present."""
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 0)
    monkeypatch.setattr(slurm_cluster.shutil, "which",
                        lambda tool: "/usr/bin/apt-get" if tool == "apt-get" else None)


def test_without_root_nothing_is_tried(monkeypatch):
    monkeypatch.setattr(slurm_cluster.os, "geteuid", lambda: 1000)

    def refuse(*args, **kwargs):
        raise AssertionError("nothing may run without root")

    monkeypatch.setattr(slurm_cluster.subprocess, "run", refuse)
    with pytest.raises(slurm_cluster.SlurmUnavailable, match="run these tests as root"):
        slurm_cluster.install_if_missing()


def test_without_apt_get_the_reason_names_it(no_slurm, monkeypatch):
    monkeypatch.setattr(slurm_cluster.shutil, "which", lambda tool: None)
    with pytest.raises(slurm_cluster.SlurmUnavailable, match="there is no apt-get"):
        slurm_cluster.install_if_missing()


def test_an_unreachable_package_mirror_is_a_reason_to_skip(no_slurm, monkeypatch):
    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to fetch some archives")

    monkeypatch.setattr(slurm_cluster.subprocess, "run", offline)
    with pytest.raises(slurm_cluster.SlurmUnavailable, match="Unable to fetch"):
        slurm_cluster.install_if_missing()


def test_a_daemon_that_does_not_start_is_a_failure(tmp_path, monkeypatch):
    def broken(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "munged: error: bad key")

    monkeypatch.setattr(slurm_cluster.subprocess, "run", broken)
    cluster = slurm_cluster.LocalSlurm(tmp_path)
    with pytest.raises(slurm_cluster.SlurmFailed, match="bad key"):
        cluster._daemon("munged", ["munged"])


FAKE_CLUSTER = """
class SlurmUnavailable(RuntimeError):
    pass


class SlurmFailed(RuntimeError):
    pass


class LocalSlurm:
    def __init__(self, folder):
        pass

    def start(self):
        raise {error}("{why}")

    def stop(self):
        pass
"""


@pytest.mark.parametrize("error, outcome", [("SlurmUnavailable", "1 skipped"),
                                            ("SlurmFailed", "1 error")])
def test_the_fixture_skips_when_slurm_cannot_run_and_fails_when_it_breaks(tmp_path, error,
                                                                          outcome):
    (tmp_path / "conftest.py").write_text((Path(__file__).parent / "conftest.py").read_text())
    (tmp_path / "slurm_cluster.py").write_text(FAKE_CLUSTER.format(error=error, why="no root"))
    (tmp_path / "test_uses_slurm.py").write_text("def test_job(slurm):\n    pass\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:xdist",
                           "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert outcome in proc.stdout, proc.stdout
    assert "no root" in proc.stdout
