"""Fixtures of the driver tests: a real one-node Slurm cluster (tests marked `slurm`), and
`sibling`, which test modules use to share another test module's helpers."""

from __future__ import annotations

import fcntl
import importlib
import sys
import tempfile
from pathlib import Path

import pytest


def sibling(name: str):
    """The test module ``name`` of this folder, imported as a plain module (for its helpers
    and fixtures); ``--import-mode=importlib`` puts no test folder on ``sys.path``."""
    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(here)


def save_world_model(path: Path, layers: int, hidden: int, max_positions: int, **config) -> None:
    """A random GPT-NeoX (seed 0) with the built-in world's tokenizer, saved to ``path``
    as ``from_pretrained`` reads it; ``config`` adds GPTNeoXConfig keys."""
    import torch
    from magic_datasets.world import World, build_tokenizer
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tokenizer = build_tokenizer(World())
    torch.manual_seed(0)
    GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=2 * hidden,
        max_position_embeddings=max_positions, tie_word_embeddings=False, **config,
    )).save_pretrained(path)
    tokenizer.save_pretrained(path)


# Test modules import `sibling` and `save_world_model` from here by this name: pytest names a conftest after its
# path, which a test module cannot import.
sys.modules.setdefault("driver_tests", sys.modules[__name__])

# Several pytest-xdist workers may reach the Slurm tests at once; one cluster
# at a time may run on the machine (one host name, one node).
LOCK = Path(tempfile.gettempdir()) / "magic-driver-slurm-tests.lock"


def _slurm_module():
    return sibling("slurm_cluster")


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
            pytest.skip(f"no Slurm cluster can run on this machine: {exc}")
        except module.SlurmFailed as exc:
            cluster.stop()
            pytest.fail(f"the test Slurm cluster did not start: {exc}", pytrace=False)
        try:
            yield cluster
        finally:
            cluster.stop()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` with its size and mtime: what a refusal must leave as it was."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


class Refusal:
    """The contract for a user mistake: exit code 2, one line ``error: ...`` naming the
    problem, no traceback, and the watched folders exactly as they were before."""

    def __init__(self, *watched: Path):
        self.watched = watched
        self.before = {str(w): _snapshot(w) for w in watched}

    def check(self, exit_code: int, stderr: str, *expected: str) -> str:
        lines = stderr.strip().splitlines()
        assert exit_code == 2, f"exit {exit_code}: {stderr}"
        assert "Traceback" not in stderr, stderr
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        for text in expected:
            assert text in lines[0], f"{text!r} not in {lines[0]!r}"
        for w in self.watched:
            assert _snapshot(w) == self.before[str(w)], f"{w} changed by a refused command"
        return lines[0]


@pytest.fixture
def refusal():
    """``refusal(*folders)`` snapshots the folders; ``.check(code, stderr, *texts)`` asserts
    the one-line refusal and that the folders are unchanged."""
    return Refusal
