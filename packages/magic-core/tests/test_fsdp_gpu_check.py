"""The GPU check script (scripts/fsdp_gpu_check.py), run here in its CPU mode."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parents[1] / "scripts"
ROOT = Path(__file__).parents[3]


@pytest.fixture(scope="module")
def script():
    # Spawned ranks import the script by name through the parent's sys.path.
    sys.path.insert(0, str(SCRIPTS))
    try:
        import fsdp_gpu_check

        yield fsdp_gpu_check
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_failing_two_rank_try_is_recorded_not_waited_for(script):
    # This torch has no NCCL: both ranks fail at init, and the reason is kept.
    entry = script.two_ranks("cpu", "nccl", timeout=120, reference={})
    assert entry["status"] == "error"
    assert "NCCL" in entry["why"] or "nccl" in entry["why"]
    assert entry["wall_seconds"] < 60


@pytest.mark.slow
def test_cpu_mode_shards_one_rank_exactly(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        str(ROOT / p) for p in ("packages/magic-core/src", "packages/magic-datasets/src",
                                "packages/torch-dtensor-patch/src"))}
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "fsdp_gpu_check.py"), "--out", str(out), "--device", "cpu",
         "--backend", "gloo", "--two-ranks", "none"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    sharded = report["runs"]["fsdp_1rank_gloo"]
    print(json.dumps(sharded, indent=1))
    assert report["ok"] and sharded["max_rel_diff_scores"] <= 1e-10
    assert sharded["param_types"] == ["DTensor"]
    assert report["runs"]["unsharded"]["param_types"] == ["Parameter"]
