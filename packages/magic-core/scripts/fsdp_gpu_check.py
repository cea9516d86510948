"""Sharded (FSDP) attribution on one GPU against the unsharded run: scores, timings, JSON.

    PYTHONPATH=packages/magic-core/src:packages/magic-datasets/src:packages/torch-dtensor-patch/src \\
        python packages/magic-core/scripts/fsdp_gpu_check.py --out fsdp_gpu_check.json

One small GPT-NeoX job in float64 (per-token scores, Adam, clipping, unequal
document lengths, an MLP width that splits unevenly) runs

1. unsharded, in this process, without torch.distributed;
2. sharded over a 1-rank process group of ``--backend`` (NCCL on a GPU):
   bergson's simple_fsdp, DTensor parameters and the traced sharded step;
3. with ``--two-ranks auto``, sharded over 2 ranks on the same device: NCCL
   first (it normally refuses two ranks on one GPU), then gloo (where gloo
   can move CUDA tensors). A refusal or error is recorded with its reason.

The JSON (also printed) holds each run's max relative difference to the
unsharded scores, its timings and peak GPU memory, and the torch, CUDA and
torch-dtensor-patch facts. ``--device cpu --backend gloo`` runs the same
checks on the CPU (how it is tested without a GPU). Missing packages are
listed all at once (exit 3) before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import socket
import sys
import tempfile
import time
import traceback
from datetime import timedelta
from pathlib import Path

# Top-level modules the run imports (magic-core, magic-datasets, bergson's
# MAGIC engine and what they import), listed when an import fails.
REQUIRED = [
    "torch", "transformers", "tokenizers", "safetensors", "huggingface_hub", "datasets",
    "pyarrow", "pandas", "dill", "multiprocess", "xxhash", "fsspec", "bergson", "torchopt",
    "optree", "accelerate", "peft", "scipy", "jaxtyping", "ml_dtypes", "petname",
    "simple_parsing", "graphviz", "psutil", "pluggy", "numpy", "yaml", "tqdm", "jinja2",
    "magic_core", "magic_datasets", "torch_dtensor_patch",
]
TOL = 1e-10  # relative, float64


def missing_modules() -> list[str]:
    """[] when the run's imports work; else what is missing (all absent top-level modules)."""
    try:
        import magic_core  # noqa: F401
        from magic_core import bergson_api
        from transformers import GPTNeoXForCausalLM  # noqa: F401

        bergson_api.check_surface()
    except ImportError as exc:
        absent = {name for name in REQUIRED if importlib.util.find_spec(name) is None}
        return sorted(absent | {exc.name or str(exc)})
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the job -------------------------------------------------------------------------
def build_job():
    """Model, token rows, query, configs: the same on every call (seeded)."""
    import magic_core as mc
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    generator = torch.Generator().manual_seed(0)
    vocab = 256
    lengths = torch.randint(9, 33, (12,), generator=generator).tolist()
    rows = [torch.randint(1, vocab, (n,), generator=generator).tolist() for n in lengths]
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows), 0, 32)
    queries = [torch.randint(1, vocab, (20,), generator=generator).tolist() for _ in range(4)]
    objective = mc.LanguageModelObjective.from_token_ids(queries, name="random-rows")
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=67, max_position_embeddings=64, attn_implementation="eager",
    ))
    train = mc.TrainConfig(optimizer="adam", lr=1e-2, batch_size=4, epochs=2, precision="fp64",
                           max_seq_len=32, seed=0, max_grad_norm=1.0)
    return model, corpus, objective, train


def attribution_config(sharding: str, states_on_device: bool):
    import magic_core as mc

    extra = {}
    if states_on_device and "device_memory" in {f.name for f in dataclasses.fields(mc.AttributionConfig)}:
        # Without it a CUDA run keeps its states in host memory (the default).
        extra["device_memory"] = "64GiB"
    return mc.AttributionConfig(kept_states="sqrt", granularity="per-token", sharding=sharding,
                                **extra)


def run_job(device: str, sharding: str, states_on_device: bool = False) -> dict:
    import magic_core as mc
    import torch

    model, corpus, objective, train = build_job()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = mc.attribute(model, None, corpus, objective, train,
                          attribution_config(sharding, states_on_device), device=device,
                          progress=False)
    if cuda:
        torch.cuda.synchronize()
    # Trainer.initialize left the model's own parameters on the meta device: DTensors if sharded.
    param_types = sorted({type(p).__name__ for p in model.parameters()})
    return {
        "param_types": param_types,
        "per_token": result.per_token.detach().cpu(),
        "losses": torch.tensor(result.train_losses, dtype=torch.float64),
        "query_after": result.query_after,
        "seconds": time.perf_counter() - t0,
        "timings": result.timings,
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "kept_states": getattr(result, "kept_states", None),
    }


def compare(got: dict, reference: dict) -> dict:
    scale = float(reference["per_token"].abs().max())
    return {
        "max_rel_diff_scores": float((got["per_token"] - reference["per_token"]).abs().max()) / scale,
        "max_rel_diff_losses": float(((got["losses"] - reference["losses"]).abs()
                                      / reference["losses"].abs()).max()),
        "rel_diff_query_after": abs(got["query_after"] - reference["query_after"])
        / abs(reference["query_after"]),
    }


def summary(got: dict) -> dict:
    return {k: got[k] for k in ("param_types", "seconds", "timings", "peak_gpu_bytes",
                                "kept_states")}


# -- 1 rank --------------------------------------------------------------------------
def one_rank(device: str, backend: str, states_on_device: bool) -> dict:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0",
                      WORLD_SIZE="1", LOCAL_RANK="0")
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method="env://")
    try:
        return run_job(device, "fsdp", states_on_device)
    finally:
        dist.destroy_process_group()


# -- 2 ranks on one device -----------------------------------------------------------
def _rank_main(rank: int, port: int, device: str, backend: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=2, timeout=timedelta(seconds=60))
        try:
            result = run_job(device, "fsdp")
        finally:
            dist.destroy_process_group()
        torch.save(result, f"{out}.rank{rank}.pt")
    except BaseException as exc:  # recorded for the parent; the rank then exits
        Path(f"{out}.rank{rank}.err").write_text(
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}\n"
            + traceback.format_exc()
        )
        raise


def two_ranks(device: str, backend: str, timeout: float, reference: dict) -> dict:
    import torch
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "result")
        port = free_port()
        procs = [ctx.Process(target=_rank_main, args=(r, port, device, backend, out))
                 for r in range(2)]
        t0 = time.perf_counter()
        for p in procs:
            p.start()
        error_files = [Path(f"{out}.rank{r}.err") for r in range(2)]
        # Poll: once one rank has failed, the other may wait forever in a collective.
        while any(p.is_alive() for p in procs) and time.perf_counter() - t0 < timeout:
            if any(e.exists() for e in error_files):
                time.sleep(1.0)  # let the failing rank finish writing
                break
            time.sleep(0.2)
        timed_out = [p for p in procs if p.is_alive()]
        for p in timed_out:
            p.kill()
            p.join()
        wall = time.perf_counter() - t0
        errors = [e.read_text() for e in error_files if e.exists()]
        if errors:
            return {"status": "error", "why": errors[0].splitlines()[0], "wall_seconds": wall,
                    "traceback": errors[0][-3000:]}
        if timed_out:
            return {"status": "timeout", "why": f"no result within {timeout:.0f} s",
                    "wall_seconds": wall}
        results = [torch.load(f"{out}.rank{r}.pt") for r in range(2)]
    entry = {"status": "ok", "wall_seconds": wall, **summary(results[0]),
             **compare(results[0], reference)}
    entry["ranks_agree"] = bool(torch.equal(results[0]["per_token"], results[1]["per_token"]))
    entry["ok"] = entry["max_rel_diff_scores"] <= TOL and entry["ranks_agree"]
    return entry


# -- main ----------------------------------------------------------------------------
def environment(device: str) -> dict:
    import torch
    import torch_dtensor_patch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available()}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
        info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    # Before and after the patch: what this torch lacked, and what is in force.
    info["dtensor_patch_before"] = {k: v.state for k, v in torch_dtensor_patch.status().items()}
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    parser.add_argument("--device", default="cuda", help="cuda | cuda:N | cpu (default cuda)")
    parser.add_argument("--backend", default=None, help="nccl | gloo (default: nccl on cuda)")
    parser.add_argument("--two-ranks", choices=["auto", "none"], default="auto",
                        help="also try 2 ranks on the same device (default auto)")
    parser.add_argument("--budget", type=float, default=110.0,
                        help="seconds the whole check may take; 2-rank tries get what is left")
    args = parser.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    report: dict = {"ok": False}

    def write() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    missing = missing_modules()
    if missing:
        report["missing_modules"] = missing
        report["why"] = "these modules are not importable: " + ", ".join(missing)
        write()
        print(json.dumps(report, indent=2))
        return 3

    import torch

    device = args.device
    cuda = torch.device(device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        report["why"] = f"--device {device} but torch sees no CUDA GPU"
        write()
        print(report["why"], file=sys.stderr)
        return 2
    backend = args.backend or ("nccl" if cuda else "gloo")
    report.update(device=device, backend=backend, environment=environment(device), runs={})
    runs = report["runs"]

    reference = run_job(device, "none")
    runs["unsharded"] = summary(reference)
    write()
    # The default state store (on CUDA: kept states in host memory), then every
    # kept state on the device.
    one_rank_keys = [f"fsdp_1rank_{backend}", f"fsdp_1rank_{backend}_states_on_device"]
    for key, on_device in zip(one_rank_keys, (False, True)):
        try:
            got = one_rank(device, backend, on_device)
            runs[key] = {**summary(got), **compare(got, reference)}
            runs[key]["ok"] = runs[key]["max_rel_diff_scores"] <= TOL
        except Exception as exc:
            runs[key] = {"status": "error", "ok": False, "why": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc()[-3000:]}
        write()
    import torch_dtensor_patch

    report["environment"]["dtensor_patch_after"] = {
        k: v.state for k, v in torch_dtensor_patch.status().items()}
    write()

    if args.two_ranks == "auto":
        for two_backend in (["nccl", "gloo"] if cuda else ["gloo"]):
            left = args.budget - (time.perf_counter() - t_start)
            key = f"fsdp_2ranks_same_device_{two_backend}"
            if left < 30:
                runs[key] = {"status": "skipped", "why": f"time budget: {left:.0f} s left"}
                continue
            runs[key] = two_ranks(device, two_backend, min(60.0, left - 5), reference)
            write()

    report["ok"] = all(runs[key]["ok"] for key in one_rank_keys)
    report["total_seconds"] = time.perf_counter() - t_start
    write()
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
