"""`magic plan`: the numbers of a job's plan, its warnings and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from magic_core.keep_schedule import GRADIENTS_SEGMENT, kept_gradients, kept_in_training
from magic_driver.cli import main
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

REPO = Path(__file__).resolve().parents[2]
SIX_B = REPO / "benchmarks" / "model_configs" / "deep-ignorance-unfiltered"

# Every dim 0 even, so that two ranks split each tensor in equal halves.
TINY = dict(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=64, tie_word_embeddings=False)
# Big enough for GPU and host memory to matter; only ever built on the meta device.
MEDIUM = dict(vocab_size=1024, hidden_size=1024, num_hidden_layers=8, num_attention_heads=8,
              intermediate_size=4096, max_position_embeddings=256, tie_word_embeddings=False)


def neox_parameters(vocab: int, d: int, layers: int) -> int:
    """GPT-NeoX with a 4d MLP, by hand: per layer qkv (3d^2 + 3d), dense (d^2 + d), the MLP
    (8d^2 + 5d) and two layer norms (4d); untied embeddings 2Vd; the final norm 2d."""
    return layers * (12 * d * d + 13 * d) + 2 * vocab * d + 2 * d


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "h100.yaml").write_text("gpu: H100\ngpu_memory: 80GiB\nnode_memory: 512GiB\n")
    monkeypatch.setenv("MAGIC_CLUSTER_CONFIG", str(profiles))
    monkeypatch.delenv("MAGIC_CLUSTER", raising=False)
    return tmp_path


def model_dir(root: Path, shape: dict, name: str) -> Path:
    GPTNeoXConfig(**shape).save_pretrained(root / name)
    return root / name


def job_file(root: Path, model: Path, docs: int = 32, batch: int = 4, seq: int = 16,
             **sections) -> Path:
    job = {
        "kind": "attribute", "device": "cpu", "model": {"path": str(model)},
        "data": {"dataset": "world-attribution", "options": {"n_docs": docs}},
        "train": {"optimizer": "adam", "batch_size": batch, "max_seq_len": seq, "shuffle": False},
        "attribution": {"spill_dir": str(root / "spill")},
        "output": {"dir": str(root / "run")},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            job.setdefault(section, {}).update(values)
        else:
            job[section] = values
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def plan(*args: str) -> tuple[dict, str, str]:
    result = CliRunner().invoke(main, ["plan", *args, "--json", "plan.json"])
    assert result.exit_code == 0, result.output
    return json.loads(Path("plan.json").read_text()), result.stdout, result.stderr


def test_a_job_file_plan_equals_the_hand_computed_numbers(home):
    model = model_dir(home, TINY, "tiny")
    real = sum(p.numel() for p in GPTNeoXForCausalLM(GPTNeoXConfig(**TINY)).parameters())
    data, stdout, _ = plan(str(job_file(home, model)))

    assert data["model"]["parameters"] == real == neox_parameters(96, 32, 2)
    steps, tokens = 32 // 4, 4 * 16
    assert data["run"]["steps"] == steps and data["run"]["ranks"] == 1
    assert data["run"]["device"] == "cpu"
    state = data["state"]
    # fp32 Adam: parameters plus two moments of their shapes.
    assert state["parameter_bytes"] == 4 * real and state["moment_bytes"] == 8 * real
    assert state["bytes"] == state["bytes_per_rank"] == 12 * real
    matmul = real - 96 * 32  # the input embedding is a lookup
    assert data["time"]["flops_per_step_per_rank"] == pytest.approx(
        (6 * matmul + 12 * 2 * 16 * 32) * tokens)
    schedule = data["schedule"]
    assert schedule["resolved"] == "all" and schedule["states"]["device"] == steps
    assert schedule["replayed_steps"] == 0 and schedule["spill_bytes_per_rank"] == 0
    for label in ("model", "training state", "kept states", "peak memory per rank", "time"):
        assert any(line.startswith(label) for line in stdout.splitlines()), stdout
    assert f"{real:,} parameters" in stdout
    memory = data["memory"]
    assert memory["train_bytes"] == sum(memory["train_parts"].values())
    assert memory["backward_bytes"] > memory["train_bytes"]


def test_the_preset_plan_on_gh200(home):
    data, stdout, stderr = plan("preset:attr-wikitext", "--cluster", "gh200", "--set",
                                f"model.path={SIX_B}", "--set", "attribution.sharding=fsdp")

    assert data["model"]["parameters"] == neox_parameters(50432, 4096, 32)
    assert data["run"] | {"ranks": 4, "device": "GH200", "steps": 250, "optimizer": "sgd"} \
        == data["run"]
    assert data["state"]["moment_bytes"] == 0  # plain SGD keeps no moment
    assert data["state"]["bytes_per_rank"] == data["state"]["bytes"] // 4
    assert data["schedule"]["resolved"] == "sqrt"
    assert data["time"]["assumed"] is True and "assumed" in stdout
    assert "peak memory per GPU" in stdout
    assert data["warnings"] and all(f"warning: {w}" in stderr for w in data["warnings"])


def test_fsdp_halves_what_a_rank_keeps_and_data_parallel_does_not(home):
    job = str(job_file(home, model_dir(home, TINY, "tiny")))
    whole, _, _ = plan(job)
    parallel, _, _ = plan(job, "--set", "slurm.tasks_per_node=2")
    sharded, _, _ = plan(job, "--set", "slurm.tasks_per_node=2", "--set",
                         "attribution.sharding=fsdp")

    assert parallel["state"]["bytes_per_rank"] == whole["state"]["bytes"]
    assert 2 * sharded["state"]["bytes_per_rank"] == whole["state"]["bytes"]
    assert 2 * sharded["state"]["parameter_bytes_per_rank"] == whole["state"]["parameter_bytes"]
    # Each data-parallel rank takes half of every batch's rows.
    assert 2 * parallel["time"]["flops_per_step_per_rank"] == whole["time"]["flops_per_step_per_rank"]


def test_auto_resolves_to_all_then_gradients_then_sqrt_as_room_shrinks(home, monkeypatch):
    job = str(job_file(home, model_dir(home, TINY, "tiny"), docs=64))
    steps = 16
    roomy, _, _ = plan(job, "--set", "attribution.device_memory=1GiB")
    assert roomy["schedule"]["resolved"] == "all"
    assert roomy["schedule"]["states"] == {"device": steps, "host": 0, "disk": 0}

    tight, _, _ = plan(job, "--set", "attribution.device_memory=0B")
    assert tight["schedule"]["resolved"] == "gradients"
    kept, grads = kept_in_training(steps, "gradients"), kept_gradients(steps, "gradients")
    assert tight["schedule"]["states"] == {"device": 0, "host": 0, "disk": len(kept)}
    assert tight["schedule"]["gradients"]["disk"] == len(grads) == steps - steps // GRADIENTS_SEGMENT
    assert tight["schedule"]["replayed_updates"] == len(grads)
    state = tight["state"]
    assert tight["schedule"]["spill_bytes_per_rank"] >= (
        len(kept) * state["bytes_per_rank"] + len(grads) * state["gradient_bytes_per_rank"])

    # Sharded runs cannot apply kept gradients again: all on disk if it has room, else sqrt.
    sharded = ("--set", "attribution.device_memory=0B", "--set", "slurm.tasks_per_node=2",
               "--set", "attribution.sharding=fsdp")
    # A spill directory not created yet has its nearest existing parent's room (the store
    # creates it), as one that exists.
    assert not (home / "spill").exists()
    assert plan(job, *sharded)[0]["schedule"]["resolved"] == "all"
    (home / "spill").mkdir()
    assert plan(job, *sharded)[0]["schedule"]["resolved"] == "all"
    import magic_core.keep_schedule as keep_schedule

    monkeypatch.setattr(keep_schedule.shutil, "disk_usage", lambda path: _Usage(free=1000))
    squeezed, _, _ = plan(job, *sharded)
    assert squeezed["schedule"]["resolved"] == "sqrt"
    assert squeezed["schedule"]["replayed_steps"] > 0


def test_the_ranks_of_a_node_share_its_memory_budget(home):
    """Each rank's auto budget is half of its share of the node's memory, as
    `magic_core.state_store.default_budgets` computes it under torchrun or srun."""
    gpus = {"device": "auto", "slurm": {"tasks_per_node": 4, "gpus_per_node": 4}}
    job = str(job_file(home, model_dir(home, TINY, "tiny"), **gpus))
    data, _, _ = plan(job, "--cluster", "h100")  # nodes of 512 GiB
    assert data["schedule"]["budgets_per_rank"] == {"device": 0, "host": 64 * 2**30}
    (home / "profiles" / "small-cpu.yaml").write_text("node_memory: 512MiB\n")
    cpus = str(job_file(home, model_dir(home, TINY, "tiny"), slurm={"tasks_per_node": 4}))
    data, _, _ = plan(cpus, "--cluster", "small-cpu")
    assert data["schedule"]["budgets_per_rank"] == {"device": 64 * 2**20, "host": 0}


class _Usage:
    def __init__(self, free: int):
        self.total, self.used, self.free = 10 * free, 9 * free, free


def _medium_job(home: Path, **sections) -> str:
    return str(job_file(home, model_dir(home, MEDIUM, "medium"), docs=64, batch=4, seq=128,
                        **sections))


def test_gpu_memory_warning_names_the_setting_that_fits(home):
    gpus = {"device": "auto", "slurm": {"tasks_per_node": 2, "gpus_per_node": 2}}
    job = _medium_job(home, **gpus)
    need = {}
    for sharding in ("none", "fsdp"):
        data, _, _ = plan(job, "--cluster", "h100", "--set", f"attribution.sharding={sharding}")
        need[sharding] = max(data["memory"]["train_bytes"], data["memory"]["backward_bytes"])
    assert need["fsdp"] < need["none"]
    between = (need["fsdp"] + need["none"]) // 2 + 2**30  # the CUDA context comes on top
    (home / "profiles" / "small.yaml").write_text(
        f"gpu: H100\ngpu_memory: '{between}'\nnode_memory: 512GiB\n")

    data, _, stderr = plan(job, "--cluster", "small")
    [line] = [w for w in data["warnings"] if w.startswith("GPU memory")]
    assert "set attribution.sharding=fsdp" in line and f"warning: {line}" in stderr
    assert not plan(job, "--cluster", "small", "--set", "attribution.sharding=fsdp")[0]["warnings"]


def test_host_memory_warning_names_attribution_host_memory(home):
    job = _medium_job(home, device="auto", slurm={"gpus_per_node": 1, "mem": "8G"})
    data, _, _ = plan(job, "--cluster", "h100")
    assert data["schedule"]["states"]["host"] > 0
    [line] = [w for w in data["warnings"] if w.startswith("host memory")]
    assert "slurm.mem" in line and "set attribution.host_memory=4GiB" in line
    fixed, _, _ = plan(job, "--cluster", "h100", "--set", "attribution.host_memory=4GiB")
    assert not [w for w in fixed["warnings"] if w.startswith("host memory")]


def test_disk_warnings_name_spill_dir_and_output_dir(home, monkeypatch):
    import magic_core.keep_schedule as keep_schedule

    job = _medium_job(home, attribution={"device_memory": "0", "kept_states": "all"})
    monkeypatch.setattr(keep_schedule.shutil, "disk_usage", lambda path: _Usage(free=2**30))
    data, _, _ = plan(job)
    lines = [w for w in data["warnings"] if w.startswith("disk")]
    assert any("set attribution.spill_dir to a disk with" in w for w in lines), lines
    assert any("set output.dir (or --out)" in w for w in lines), lines


def test_time_warning_names_slurm_time(home):
    job = _medium_job(home, slurm={"time": "2", "checkpoint_before_end": 10})
    data, _, _ = plan(job)
    assert data["time"]["total_s"] > 110
    [line] = [w for w in data["warnings"] if w.startswith("time")]
    assert "set slurm.time=01:00:00" in line
    assert not plan(job, "--set", "slurm.time=01:00:00")[0]["warnings"]


@pytest.mark.parametrize("args, expected", [
    (["--set", "train.lr=-1"], "train.lr"),
    (["--set", "train.precision=bf16"], "precision 'bf16' is refused"),
    (["--set", "train.max_seq_len=65"], "set train.max_seq_len to 64 or less"),
    (["--set", "slurm.tasks_per_node=8"], "cannot be split over 8 ranks"),
])
def test_a_bad_job_is_refused_in_one_line(home, refusal, args, expected):
    job = str(job_file(home, model_dir(home, TINY, "tiny")))
    watch = refusal(home / "run")
    result = CliRunner().invoke(main, ["plan", job, *args])
    watch.check(result.exit_code, result.stderr, expected)
    assert not Path("plan.json").exists()


def test_an_unlearning_job_is_refused(home, refusal):
    result = CliRunner().invoke(main, ["plan", "preset:unlearn-bs4-adam"])
    refusal(home).check(result.exit_code, result.stderr, "plans attribution jobs")


def test_help_imports_no_torch(home):
    code = textwrap.dedent("""\
        import sys
        from magic_driver.cli import main
        try:
            main.main(["plan", "--help"], prog_name="magic", standalone_mode=False)
        finally:
            print("HEAVY", [m for m in ("torch", "transformers") if m in sys.modules])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert "magic plan preset:attr-wikitext --cluster gh200" in proc.stdout
    assert proc.stdout.strip().endswith("HEAVY []"), proc.stdout


def test_the_cpu_rate_is_the_fit_of_the_committed_benchmarks():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import plan_accuracy
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from magic_driver.plan_time import CPU

    fitted = plan_accuracy.fit_from_results()
    assert CPU.flops == pytest.approx(fitted["flops"], rel=1e-3)
    assert CPU.backward_flops == pytest.approx(fitted["backward_flops"], rel=1e-3)
    assert CPU.layer_seconds == pytest.approx(fitted["layer_seconds"], rel=1e-3)
    assert CPU.backward_layer_seconds == pytest.approx(fitted["backward_layer_seconds"], rel=1e-3)


def test_meta_sizes_equal_a_real_engine_state():
    """What `plan_model` counts is `state_store.state_bytes` of the engine's own state."""
    import magic_core as mc
    from magic_core.optim import build_optimizer
    from magic_core.state_store import state_bytes
    from magic_core.training_step import take_state
    from magic_driver import plan_model

    train = mc.TrainConfig(optimizer="adamw")
    config = GPTNeoXConfig(**TINY)
    size = plan_model.state_size(plan_model.meta_model(config, torch.float32), train, 8, 1)
    real = take_state(GPTNeoXForCausalLM(config), build_optimizer(train, 8))
    assert size.bytes == state_bytes(real)
