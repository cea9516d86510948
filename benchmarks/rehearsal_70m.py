"""The memory-bounded, sharded path at a realistic size: a Pythia-70M-shaped model on 2 gloo ranks.

A GPT-NeoX of Pythia-70M's shape (`model_configs/pythia-70m`: 6 layers,
width 512, 8 heads, vocabulary 50304, untied; 70,426,624 parameters),
randomly initialised from its config, fp32, trained with the seed's plain
SGD (lr 1e-4) on a synthetic token corpus (uniform random ids, seeded: no
network, no tokenizer), seq 256, batch 4, and attributed per token to the
language-model loss of 8 other random rows. Three workloads, each as 2 CPU
ranks over gloo in fresh processes (one thread each):

- ``plain``: the same training with ``torch.optim.SGD``, gradients
  all-reduced, nothing kept: the baseline of the ratios;
- ``dp``: `magic_core.attribute` data parallel (``sharding: none``);
- ``fsdp``: the same sharded (``sharding: fsdp``).

The in-memory budget of kept states (``attribution.device_memory``, the
host-memory tier of a CPU run) is set so that most kept states spill to
disk. Printed and written to ``results/rehearsal-70m.{md,json}``: time x
plain training, peak resident memory per rank x plain training's, bytes
spilled per rank, and the largest difference between sharded and unsharded
scores relative to the largest score (target 1e-5 in fp32).

    python benchmarks/rehearsal_70m.py                    # the full rehearsal, 64 steps
    python benchmarks/rehearsal_70m.py --steps 2 --out /tmp/rehearsal   # a smoke run (~2 min)
    magic plan benchmarks/model_configs/rehearsal-70m.yaml --set slurm.tasks_per_node=2   # its estimate

The ``sqrt`` schedule is the default: with plain SGD a kept gradient is as
large as a state, so ``auto`` (``gradients`` data parallel, ``all`` sharded
when the disk has room) would spill 18 GB per data-parallel rank at 64 steps;
``--kept-states auto`` runs that instead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODEL = HERE / "model_configs" / "pythia-70m"
SEQ, BATCH, LR, QUERY_ROWS = 256, 4, 1e-4, 8
TARGET = 1e-5  # sharded vs unsharded, relative to the largest score (fp32)
RANKS = 2


def _rows(steps: int, vocab: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randint(3, vocab, (steps * BATCH, SEQ), generator=g)


def _query(vocab: int):
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randint(3, vocab, (QUERY_ROWS, SEQ), generator=g)


def _model():
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(MODEL, attn_implementation="eager")
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def _plain(steps: int, rank: int) -> dict:
    """SGD on this rank's rows of every batch (a stride, as magic-core's stream takes them),
    the gradients averaged over the ranks, as data-parallel training does."""
    import torch
    import torch.distributed as dist
    from magic_core.memory import ResidentPeak

    model = _model()
    model.eval()  # as the attribution trains: no dropout
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    rows = _rows(steps, model.config.vocab_size)
    with ResidentPeak() as peak:
        dist.barrier()
        t0 = time.perf_counter()
        for step in range(steps):
            batch = rows[step * BATCH:(step + 1) * BATCH][rank::RANKS]
            loss = model(input_ids=batch, labels=batch).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for p in model.parameters():
                dist.all_reduce(p.grad)
                p.grad /= RANKS
            opt.step()
        dist.barrier()
        seconds = time.perf_counter() - t0
    return {"train": seconds, "peak_bytes": {"train": peak.peak()}}


def _attribute(steps: int, sharding: str, kept_states: str, budget: str, spill_dir: str,
               out: Path, rank: int) -> dict:
    import magic_core as mc
    import torch

    model = _model()
    vocab = model.config.vocab_size
    rows = _rows(steps, vocab).tolist()
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows),
                                truncated=0, max_seq_len=SEQ)
    result = mc.attribute(
        model, None, corpus, mc.LanguageModelObjective.from_token_ids(_query(vocab).tolist()),
        mc.TrainConfig(optimizer="sgd", lr=LR, batch_size=BATCH, shuffle=False, seed=42,
                       precision="fp32", max_seq_len=SEQ),
        mc.AttributionConfig(kept_states=kept_states, granularity="per-token", sharding=sharding,
                             device_memory=budget, spill_dir=spill_dir),
        progress=rank == 0,
    )
    if rank == 0:
        torch.save({"per_token": result.per_token, "per_example": result.per_example},
                   out / f"scores-{sharding}.pt")
    # The gradient store counts against the state store's budgets: one total for both.
    spilled = result.kept_states["bytes"]["disk"]
    return {**{k: v for k, v in result.timings.items() if k != "replay"},
            "schedule": result.schedule, "kept_states": result.kept_states["placed"],
            "kept_gradients": result.kept_gradients["placed"], "spilled_bytes": spilled,
            "replayed_steps": result.replayed_steps, "peak_bytes": dict(result.peak_memory)}


def _rank(rank: int, port: int, workload: str, args: dict, out: str) -> None:
    """One spawned rank: joins as torchrun's ranks do, runs ``workload``, writes its numbers."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(RANKS), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(RANKS), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    from magic_core.distributed import init_from_environment, shutdown

    torch.set_num_threads(args["threads"])
    init_from_environment(backend="gloo")
    try:
        if workload == "plain":
            numbers = _plain(args["steps"], rank)
        else:
            numbers = _attribute(args["steps"], "fsdp" if workload == "fsdp" else "none",
                                 args["kept_states"], args["budget"], args["spill_dir"],
                                 Path(out), rank)
    finally:
        shutdown()
    # ru_maxrss: the process's peak resident memory over its life, in KiB on Linux.
    numbers["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    (Path(out) / f"{workload}-rank{rank}.json").write_text(json.dumps(numbers))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_workload(workload: str, args: dict, out: Path) -> list[dict]:
    import torch.multiprocessing as mp

    t0 = time.perf_counter()
    mp.spawn(_rank, args=(_free_port(), workload, args, str(out)), nprocs=RANKS, join=True)
    ranks = [json.loads((out / f"{workload}-rank{r}.json").read_text()) for r in range(RANKS)]
    print(f"{workload}: {time.perf_counter() - t0:.0f} s in all", flush=True)
    return ranks


def score_difference(out: Path) -> dict:
    """Sharded against unsharded scores: the largest difference over the largest score."""
    import torch

    dp, fsdp = (torch.load(out / f"scores-{s}.pt") for s in ("none", "fsdp"))
    found = {}
    for key in ("per_token", "per_example"):
        a, b = dp[key].double(), fsdp[key].double()
        found[key] = {"max_abs_difference": float((a - b).abs().max()),
                      "max_abs_score": float(a.abs().max()),
                      "relative": float((a - b).abs().max() / a.abs().max())}
    return found


def summarize(runs: dict, args: dict, scores: dict) -> dict:
    plain = runs["plain"]
    plain_s = max(r["train"] for r in plain)
    plain_peak = [r["max_rss_bytes"] for r in plain]
    rows = {}
    for name in ("dp", "fsdp"):
        ranks = runs[name]
        seconds = {p: max(r.get(p, 0.0) for r in ranks) for p in ("train", "query", "backward")}
        total = sum(seconds.values())
        rows[name] = {
            "seconds": seconds, "total_s": total, "time_x_plain": total / plain_s,
            "train_x_plain": seconds["train"] / plain_s,
            "max_rss_gib_per_rank": [r["max_rss_bytes"] / 2**30 for r in ranks],
            "max_rss_x_plain_per_rank": [r["max_rss_bytes"] / p for r, p in zip(ranks, plain_peak)],
            "phase_peak_gib_per_rank": [{k: v / 2**30 for k, v in r["peak_bytes"].items()}
                                        for r in ranks],
            "spilled_gib_per_rank": [r["spilled_bytes"] / 2**30 for r in ranks],
            "schedule": ranks[0]["schedule"], "kept_states_rank0": ranks[0]["kept_states"],
            "replayed_steps": ranks[0]["replayed_steps"],
        }
    return {"settings": {**args, "model": str(MODEL.relative_to(HERE.parent)), "parameters": 70_426_624,
                         "seq": SEQ, "batch": BATCH, "lr": LR, "optimizer": "sgd",
                         "precision": "fp32", "ranks": RANKS, "backend": "gloo",
                         "cpus": os.cpu_count()},
            "plain": {"train_s": plain_s, "max_rss_gib_per_rank": [p / 2**30 for p in plain_peak]},
            "attribution": rows, "scores_sharded_vs_unsharded": scores, "target": TARGET,
            "within_target": scores["per_token"]["relative"] <= TARGET}


def table(data: dict) -> str:
    s = data["settings"]
    lines = [
        "# The 70M rehearsal: sharded and data-parallel attribution on 2 gloo ranks", "",
        f"Pythia-70M's shape ({s['parameters']:,} parameters, random init), fp32, SGD lr "
        f"{s['lr']}, {s['steps']} steps of {s['batch']} x {s['seq']} tokens, {s['ranks']} CPU "
        f"ranks x {s['threads']} thread(s) on {s['cpus']} cores; kept states `{s['kept_states']}`, "
        f"in-memory budget {s['budget']} per rank (the rest spills to disk). Plain training: "
        f"{data['plain']['train_s']:.1f} s. Written by `benchmarks/rehearsal_70m.py`.", "",
        "| run | schedule | train s | query s | backward s | time x plain | peak RSS GiB per rank "
        "| x plain's | spilled GiB per rank |",
        "|---|---|---|---|---|---|---|---|---|"]
    for name, r in data["attribution"].items():
        sec = r["seconds"]
        lines.append(
            f"| {name} | {r['schedule']} | {sec['train']:.1f} | {sec['query']:.1f} | "
            f"{sec['backward']:.1f} | {r['time_x_plain']:.2f} | "
            + " / ".join(f"{g:.2f}" for g in r["max_rss_gib_per_rank"]) + " | "
            + " / ".join(f"{x:.2f}" for x in r["max_rss_x_plain_per_rank"]) + " | "
            + " / ".join(f"{g:.2f}" for g in r["spilled_gib_per_rank"]) + " |")
    sc = data["scores_sharded_vs_unsharded"]
    lines += ["", "Sharded against unsharded scores, largest difference / largest score: "
              f"per token {sc['per_token']['relative']:.2e}, per document "
              f"{sc['per_example']['relative']:.2e} (target {data['target']:.0e}: "
              f"{'met' if data['within_target'] else 'NOT met'})."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=64, help="training steps (64: the rehearsal)")
    parser.add_argument("--kept-states", default="sqrt",
                        help="attribution.kept_states of both attributions")
    parser.add_argument("--budget", default="300MiB",
                        help="in-memory kept states per rank (attribution.device_memory); the "
                             "default holds one data-parallel state of 281 MB, two sharded")
    parser.add_argument("--spill-dir", default=None, help="where kept states spill (default: "
                        "a temporary folder under $TMPDIR)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--out", type=Path, default=RESULTS / "rehearsal-70m",
                        help="results as OUT.json and OUT.md")
    opts = parser.parse_args(argv)
    if opts.steps < 1:
        parser.error("--steps must be at least 1")
    with tempfile.TemporaryDirectory(prefix="rehearsal-70m-", dir=opts.spill_dir) as work:
        spill = Path(work) / "spill"
        args = {"steps": opts.steps, "kept_states": opts.kept_states, "budget": opts.budget,
                "threads": opts.threads, "spill_dir": str(spill)}
        runs = {name: run_workload(name, args, Path(work)) for name in ("plain", "dp", "fsdp")}
        data = summarize(runs, {k: v for k, v in args.items() if k != "spill_dir"},
                         score_difference(Path(work)))
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    opts.out.with_suffix(".md").write_text(table(data))
    print(table(data))
    return 0 if data["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
