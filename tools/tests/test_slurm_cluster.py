"""`magic submit` on a real one-node Slurm cluster (slurmctld + slurmd + munge, started here).

One attribution job (tiny GPT-NeoX, 16 world documents, SGD, float64, 64
steps) runs three ways: locally in one process, as a 2-task srun job, and as
a 2-task job that `scontrol requeue` interrupts mid-backward. The Slurm
scores equal the local ones to float64 rounding (the data-parallel path is
exact), and the requeued job resumes to exactly the uninterrupted Slurm job's
scores.

Both checks are one test: they share the uninterrupted job, and
pytest-xdist could otherwise give them to two workers (its loadgroup mode
does not work with pytest 9), each running it. A second test submits an
unlearning sweep as a job array and compares it with `magic sweep`.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from magic_datasets.world import World, build_tokenizer
from safetensors.torch import load_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

pytestmark = pytest.mark.slow

MAGIC = str(Path(sys.executable).parent / "magic")
JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A job file, its tiny model, and the environment both kinds of runs share."""
    root = tmp_path_factory.mktemp("slurm-work")
    tokenizer = build_tokenizer(World())
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, tie_word_embeddings=False,
        attn_implementation="eager"))
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    job = {
        "model": {"path": str(root / "model")},
        "data": {"dataset": "world-attribution", "options": {"n_docs": 16, "k_planted": 4}},
        "query": {"dataset": "world-hazard-mcqa", "options": {"subset": "held-out"}, "limit": 8},
        # 16 epochs: a backward phase of several seconds, long enough to requeue inside.
        # SGD, as the seed's attribution runs: rounding differences of the two ranks'
        # gradient sums stay at rounding level (Adam's normalisation amplifies them).
        "train": {"optimizer": "sgd", "lr": 0.03, "batch_size": 4, "epochs": 16,
                  "precision": "fp64", "max_seq_len": 64},
        "attribution": {"kept_states": "sqrt", "granularity": "per-token"},
        "device": "cpu",
        "slurm": {"tasks_per_node": 2, "time": "10", "checkpoint_before_end": 60},
    }
    (root / "job.yaml").write_text(yaml.safe_dump(job))
    # One thread per rank: two ranks on a 2-core machine, and equal numerics in every run.
    env = {**os.environ, "MAGIC_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return root, env


def _scores(run_dir: Path) -> dict:
    return load_file(str(run_dir / "scores.safetensors"))


def _submit(slurm, root: Path, env: dict, out: str) -> str:
    proc = subprocess.run([MAGIC, "submit", str(root / "job.yaml"), "--cluster", "local",
                           "--out", str(root / out), "--parsable"],
                          cwd=root, env={**env, "SLURM_CONF": str(slurm.conf)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _log(root: Path, out: str, job_id: str) -> str:
    path = root / out / "slurm" / f"{job_id}.out"
    return path.read_text() if path.is_file() else "(no log)"


def _run_on_slurm(slurm, root: Path, env: dict) -> tuple[Path, str]:
    """The job submitted with `magic submit`, run to its end by Slurm."""
    started = time.monotonic()
    job_id = _submit(slurm, root, env, "slurm-run")
    state = slurm.wait_for_end(job_id, JOB_TIMEOUT)
    assert state == "COMPLETED", _log(root, "slurm-run", job_id)
    assert slurm.job_field(job_id, "ExitCode") == "0:0"
    print(f"slurm job {job_id}: {time.monotonic() - started:.1f} s from submit to end")
    return root / "slurm-run", job_id


def _check_scores_like_a_local_run(slurm, root: Path, env: dict, run_dir: Path, job_id: str):
    started = time.monotonic()
    local = subprocess.run([MAGIC, "attribute", str(root / "job.yaml"), "--out",
                            str(root / "local"), "--quiet"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert local.returncode == 0, local.stderr
    print(f"local run: {time.monotonic() - started:.1f} s")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["world_size"] == 2  # really two srun tasks, not one
    assert manifest["training"]["steps"] == 64
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["status"] == "done" and progress["slurm_job_id"] == job_id
    slurm_scores, local_scores = _scores(run_dir), _scores(root / "local")
    for key in ("per_example", "per_token"):
        a, b = slurm_scores[key], local_scores[key]
        assert a.dtype == torch.float64 and a.shape == b.shape
        scale = float(b.abs().max())
        err = float((a - b).abs().max())
        print(f"{key}: max |slurm - local| = {err:.3e} (scale {scale:.3e})")
        assert err <= 1e-10 * scale, (key, err, scale)
    status = subprocess.run([MAGIC, "status", str(run_dir)],
                            env={**env, "SLURM_CONF": str(slurm.conf)},
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0 and f"{job_id}: COMPLETED" in status.stdout, status.stdout
    # `magic report` renders what the run itself rendered, from the run's files alone.
    rendered = {name: (run_dir / name).read_text() for name in ("report.md", "token_heatmap.html")}
    for name in rendered:
        (run_dir / name).unlink()
    report = subprocess.run([MAGIC, "report", str(run_dir)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert {name: (run_dir / name).read_text() for name in rendered} == rendered


def _wait_for_backward(run_dir: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            progress = json.loads((run_dir / "progress.json").read_text())
        except (OSError, ValueError):
            progress = {}
        if progress.get("phase") == "backward":
            return progress
        time.sleep(0.1)
    raise TimeoutError(f"{run_dir} never reached the backward phase")


def _check_requeue_mid_backward_resumes_exactly(slurm, root: Path, env: dict, reference: Path):
    run_dir = root / "requeued"
    started = time.monotonic()
    job_id = _submit(slurm, root, env, "requeued")
    _wait_for_backward(run_dir, JOB_TIMEOUT)
    slurm.run(["scontrol", "requeue", job_id])

    def start_now(reason):
        # Slurm holds a requeued job for a while (Reason=BeginTime); no need to wait here.
        if reason == "BeginTime":
            slurm.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=False)

    state = slurm.wait_for_end(job_id, JOB_TIMEOUT, on_pending=start_now)
    print(f"requeued job {job_id}: {time.monotonic() - started:.1f} s from submit to end")
    log = _log(root, "requeued", job_id)
    assert state == "COMPLETED", log
    assert slurm.job_field(job_id, "Restarts") == "1"
    # The first run stopped inside the backward phase with a checkpoint, and the
    # second one finished from it.
    assert "preempted at backward step" in log, log
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["status"] == "done" and "backward" in progress["phases_done"]
    checkpoint = progress["last_checkpoint"]
    assert checkpoint["phase"] == "backward" and 0 < checkpoint["step"] < progress["total"]
    print(f"resumed from backward step {checkpoint['step']}/{progress['total']}")
    resumed, uninterrupted = _scores(run_dir), _scores(reference)
    for key in ("per_example", "per_token"):
        assert torch.equal(resumed[key], uninterrupted[key]), key


def test_submitted_job_scores_like_local_and_resumes_exactly_after_requeue(slurm, work):
    root, env = work
    run_dir, job_id = _run_on_slurm(slurm, root, env)
    _check_scores_like_a_local_run(slurm, root, env, run_dir, job_id)
    _check_requeue_mid_backward_resumes_exactly(slurm, root, env, reference=run_dir)


def test_array_sweep_runs_one_point_per_task_like_magic_sweep(slurm, work):
    """`--array`: each task runs its grid point; the sweep's table gathers them all."""
    root, env = work
    job = {"kind": "unlearn", "model": {"path": str(root / "model")}, "device": "cpu",
           "forget": {"options": {"per_entity": 1}}, "retain": {"options": {"per_entity": 1}},
           "recipe": {"name": "gradient-ascent"}, "optim": {"steps": 2},
           "eval": {"hazard": {"dataset": "world-hazard-mcqa", "limit": 4},
                    "general": {"dataset": "world-general-mcqa", "limit": 4}},
           "relearn": {"enabled": False}, "output": {"save_model": False},
           "max_seq_len": 64, "slurm": {"time": "10", "checkpoint_before_end": 60}}
    (root / "unlearn.yaml").write_text(yaml.safe_dump(job))
    grid = ["--param", "lr=1e-4,1e-3"]
    started = time.monotonic()
    proc = subprocess.run([MAGIC, "submit", str(root / "unlearn.yaml"), "--array", *grid,
                           "--out", str(root / "array"), "--parsable"], cwd=root,
                          env={**env, "SLURM_CONF": str(slurm.conf)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    array_id = proc.stdout.strip()
    state = slurm.wait_for_end(array_id, JOB_TIMEOUT)
    print(f"array job {array_id}: {time.monotonic() - started:.1f} s from submit to end")
    logs = "\n".join(p.read_text() for p in sorted((root / "array" / "slurm").glob("*.out")))
    assert state == "COMPLETED", logs
    assert len(slurm.job_fields(array_id, "JobState")) == 2
    for point, lr in (("000", 1e-4), ("001", 1e-3)):
        assert json.loads((root / "array" / point / "result.json").read_text())["optim"]["lr"] == lr
    local = subprocess.run([MAGIC, "sweep", str(root / "unlearn.yaml"), *grid, "--out",
                            str(root / "sweep"), "--quiet"], cwd=root, env=env,
                           capture_output=True, text=True, timeout=JOB_TIMEOUT)
    assert local.returncode == 0, local.stderr
    from_array = json.loads((root / "array" / "table.json").read_text())
    from_sweep = json.loads((root / "sweep" / "table.json").read_text())
    assert [r["dir"] for r in from_array["rows"]] == ["000", "001"]
    for a, b in zip(from_array["rows"], from_sweep["rows"], strict=True):
        assert a["point"] == b["point"] and a["params"] == b["params"]
        for key in ("forget_accuracy", "retain_accuracy", "forget_loss", "retain_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), key
    status = subprocess.run([MAGIC, "status", str(root / "array"), "--no-slurm"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert status.returncode == 0, status.stderr
    assert status.stdout.count(": unlearning run, done; ") == 2, status.stdout
    assert "state:     done: all 2 runs" in status.stdout, status.stdout
