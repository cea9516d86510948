"""Attribution cost against plain training, and magic-core against bergson driven directly.

One run measures the same work several ways, each in a fresh subprocess (so
peak memory is per workload; plain training runs before and after every
other workload, whose ratio uses the mean of those two): a plain PyTorch
training run (torch.optim, no checkpoints), bergson's MAGIC driven directly
the way the seed scripts did (Trainer.train with checkpoints written to
disk, then Trainer.backward), `magic_core.attribute` with its defaults (what
`magic attribute` does), and magic-core with each schedule and placement
pinned (see WORKLOADS). Ratios are what to compare across machines; seconds
are this machine's.

Memory is the peak of the phase: on CUDA, GPU memory allocated; on CPU,
resident memory sampled every 5 ms, also shown above the process's resident
memory just before training (imports and the model), which is what the
training itself adds.

    python benchmarks/attribution.py                 # small CPU config (~1 min)
    python benchmarks/attribution.py --preset cpu    # 4 layers, d=256, seq 128, 64 steps
    python benchmarks/attribution.py --preset gpu --device cuda
    python benchmarks/attribution.py --scaling --preset cpu-small   # steps x schedule, PNG + JSON
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

PRESETS = {
    "cpu-small": dict(layers=2, hidden=128, heads=4, seq=64, steps=32, batch=4, vocab=512),
    "cpu": dict(layers=4, hidden=256, heads=4, seq=128, steps=64, batch=4, vocab=512),
    "gpu": dict(layers=6, hidden=512, heads=8, seq=512, steps=64, batch=4, vocab=50304),
}


def _model(cfg):
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    return GPTNeoXForCausalLM(GPTNeoXConfig(
        vocab_size=cfg["vocab"], hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"], intermediate_size=4 * cfg["hidden"],
        max_position_embeddings=cfg["seq"], attn_implementation="eager",
    ))


def _rows(cfg):
    import torch

    g = torch.Generator().manual_seed(0)
    n = cfg["steps"] * cfg["batch"]
    return torch.randint(3, cfg["vocab"], (n, cfg["seq"]), generator=g).tolist()


def _query_rows(cfg):
    import torch

    g = torch.Generator().manual_seed(1)
    return torch.randint(3, cfg["vocab"], (8, cfg["seq"]), generator=g).tolist()


def plain_training(cfg, device):
    import torch
    import torch.nn.functional as F

    model = _model(cfg).to(device)
    model.eval()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    rows = torch.tensor(_rows(cfg), device=device)
    _MEMORY.start("train")
    t0 = time.perf_counter()
    for step in range(cfg["steps"]):
        x = rows[step * cfg["batch"] : (step + 1) * cfg["batch"]]
        logits = model(input_ids=x).logits[:, :-1]
        loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    _MEMORY.stop("train")
    return {"train": seconds}


def bergson_direct(cfg, device):
    """The seed's way: DCP checkpoints on disk every sqrt step, then Trainer.backward."""
    from functools import partial

    import datasets
    import torch
    import torchopt
    from bergson.magic.data_stream import DataStream
    from bergson.magic.trainer import BackwardState, Trainer
    from bergson.utils.math import weighted_causal_lm_ce

    model = _model(cfg).to(device)
    model.eval()
    model.loss_function = partial(weighted_causal_lm_ce, reduction="mean")
    rows = _rows(cfg)
    stream = DataStream(datasets.Dataset.from_dict({"input_ids": rows}), cfg["batch"],
                        device=device, weight_shape=(len(rows), cfg["seq"]))
    trainer, state = Trainer.initialize(model, torchopt.adam(1e-4, eps_root=1e-30))
    query = torch.tensor(_query_rows(cfg), device=device)
    with tempfile.TemporaryDirectory() as ckpt_dir:
        _MEMORY.start("all")
        t0 = time.perf_counter()
        state = trainer.train(state, stream, save_dir=ckpt_dir, save_mode="sqrt")
        t1 = time.perf_counter()
        with state.activate(model) as params:
            loss = model(input_ids=query, labels=query).loss
            grads = torch.autograd.grad(loss, list(params.values()))
        param_grads = dict(zip(params, grads))
        opt_grads = [torch.zeros_like(t) for t in state.differentiable_tensors()[len(param_grads):]]
        t2 = time.perf_counter()
        trainer.backward(ckpt_dir, stream, BackwardState(param_grads, opt_grads,
                         torch.zeros_like(stream.weights)), state, cleanup=True, save_mode="sqrt")
        t3 = time.perf_counter()
        _MEMORY.stop("all")
    return {"train": t1 - t0, "query": t2 - t1, "backward": t3 - t2}


def magic_core_run(cfg, device, schedule="auto", device_memory="auto"):
    import magic_core as mc

    rows = _rows(cfg)
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows),
                                truncated=0, max_seq_len=cfg["seq"])
    with tempfile.TemporaryDirectory() as spill_dir:
        result = mc.attribute(
            _model(cfg), None, corpus, mc.LanguageModelObjective.from_token_ids(_query_rows(cfg)),
            mc.TrainConfig(optimizer="adam", lr=1e-4, batch_size=cfg["batch"], shuffle=False,
                           precision="fp32", max_seq_len=cfg["seq"]),
            mc.AttributionConfig(kept_states=schedule, granularity="per-token",
                                 device_memory=device_memory, spill_dir=spill_dir),
            device=device, progress=False,
        )
    _MEMORY.peaks.update(result.peak_memory)
    out = {k: v for k, v in result.timings.items() if k != "replay"}
    out["schedule"] = result.schedule
    out["kept_states"] = result.kept_states["placed"]
    out["replayed_steps"] = result.replayed_steps
    out["replayed_updates"] = result.replayed_updates
    out["kept_gradients"] = result.kept_gradients["placed"]
    return out


WORKLOADS = {
    "plain": plain_training,
    "bergson": bergson_direct,
    # The defaults (schedule and memory "auto"): what `magic attribute` does.
    "magic_core": magic_core_run,
    # Every state kept where training runs (on a GPU: GPU memory): no replay at all.
    "magic_core_all_memory": lambda cfg, device: magic_core_run(cfg, device, "all", "1TiB"),
    # Every state on disk, none in memory.
    "magic_core_all_disk": lambda cfg, device: magic_core_run(cfg, device, "all", "0"),
    # sqrt(n) kept states in memory: replays recompute each segment's steps once.
    "magic_core_sqrt": lambda cfg, device: magic_core_run(cfg, device, "sqrt", "1TiB"),
    # sqrt(n) states and every step's gradient, in memory: replays apply the
    # kept gradients (optimizer arithmetic) instead of recomputing steps.
    "magic_core_gradients_memory": lambda cfg, device: magic_core_run(cfg, device, "gradients", "1TiB"),
    # The same with states and gradients on disk.
    "magic_core_gradients_disk": lambda cfg, device: magic_core_run(cfg, device, "gradients", "0"),
}
_MEMORY = None  # the child's PhasePeaks


def _child(name, cfg, device, queue, kwargs):
    global _MEMORY
    # Every workload's libraries are loaded before the baseline, so that
    # "above baseline" compares the runs' own memory, not their imports.
    import bergson.magic.trainer  # noqa: F401
    import datasets  # noqa: F401
    import magic_core  # noqa: F401
    import torch
    import torchopt  # noqa: F401
    import transformers  # noqa: F401
    from magic_core.memory import PhasePeaks, resident_bytes

    _MEMORY = PhasePeaks(device)
    baseline = resident_bytes()
    fn = WORKLOADS[name] if not kwargs else magic_core_run
    out = fn(cfg, device, **kwargs)
    _MEMORY.close()
    out["total"] = sum(v for k, v in out.items() if k in ("train", "query", "backward"))
    out["peak_gib"] = {k: v / 2**30 for k, v in _MEMORY.peaks.items()}
    if device != "cuda":
        out["baseline_gib"] = baseline / 2**30
    out["threads"] = torch.get_num_threads()
    queue.put(out)


def measure(name, cfg, device, **kwargs):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, cfg, device, queue, kwargs))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def _peak(r, phase):
    return max(r["peak_gib"].values()) if phase == "any" else r["peak_gib"].get(phase, 0.0)


def _bracketed_plain(first, last):
    """Plain training measured just before and just after a workload, averaged.

    Shared machines drift by 10-30 % over minutes; the mean of the two
    brackets the window in which the workload ran.
    """
    plain = dict(first)
    for phase in ("train", "total"):
        plain[phase] = (first[phase] + last[phase]) / 2
    plain["total_runs"] = [first["total"], last["total"]]
    return plain


def compare(preset, device, names, repeat=1):
    """Every workload between two plain runs (P W1 P W2 P ...): its ratio uses those two.

    With ``repeat`` > 1 the whole sequence runs that many times; the table
    shows each workload's median-ratio run and the range of its ratios.
    """
    cfg = PRESETS[preset]
    others = [n for n in names if n != "plain"]
    plains = [measure("plain", cfg, device)]
    runs = {name: [] for name in others}  # (result, bracketing plain)
    for _ in range(repeat):
        for name in others:
            result = measure(name, cfg, device)
            plains.append(measure("plain", cfg, device))
            runs[name].append((result, _bracketed_plain(plains[-2], plains[-1])))
    plain = dict(plains[0])
    plain["total_runs"] = [p["total"] for p in plains]
    plain["train"] = plain["total"] = sum(plain["total_runs"]) / len(plains)
    results, baselines, spread = {"plain": plain}, {"plain": plain}, {"plain": [1.0]}
    for name, pairs in runs.items():
        pairs = sorted(pairs, key=lambda rb: rb[0]["total"] / rb[1]["total"])
        results[name], baselines[name] = pairs[(len(pairs) - 1) // 2]
        spread[name] = [r["total"] / b["total"] for r, b in pairs]
        results[name]["all_runs"] = [{"total": r["total"], "plain": b["total"]} for r, b in pairs]
    print(f"plain training runs: {', '.join(f'{p:.2f} s' for p in plain['total_runs'])}")
    train_peak = _peak(plain, "train")
    base = plain.get("baseline_gib", 0.0)
    unit = "GPU GiB" if device == "cuda" else "RSS GiB"
    print(f"preset {preset} on {device}: {cfg}" + (f", median of {repeat} runs" if repeat > 1 else ""))
    width = max(len(n) for n in results)
    print(f"{'workload':<{width}} {'train s':>8} {'query s':>8} {'backward s':>10} {'total s':>8} "
          f"{'plain s':>8} {'x plain':>8} {'range':>11} {'peak ' + unit:>13} {'x train peak':>13}")
    ratios = {}
    for name, r in results.items():
        peak = _peak(r, "backward" if "backward" in r["peak_gib"] else "any")
        mem_ratio = peak / train_peak
        above = ((peak - base) / (train_peak - base)) if device != "cuda" else None
        base_s = baselines[name]["total"]
        ratios[name] = {"time_over_plain": r["total"] / base_s, "plain_s": base_s,
                        "time_over_plain_runs": spread[name],
                        "backward_peak_over_train_peak": mem_ratio,
                        "backward_peak_over_train_peak_above_baseline": above}
        extra = f"  ({above:.2f}x above baseline)" if above is not None else ""
        span = f"{min(spread[name]):.2f}-{max(spread[name]):.2f}"
        print(f"{name:<{width}} {r['train']:>8.2f} {r.get('query', 0):>8.2f} "
              f"{r.get('backward', 0):>10.2f} {r['total']:>8.2f} {base_s:>8.2f} "
              f"{r['total'] / base_s:>8.2f} {span:>11} {peak:>13.2f} {mem_ratio:>13.2f}{extra}")
    return {"preset": preset, "config": cfg, "device": device, "repeat": repeat,
            "results": results, "ratios": ratios}


def scaling(preset, device, steps_list=(16, 64, 256),
            schedules=("all", "sqrt", "log", "gradients", "auto")):
    """Total time and backward peak memory of magic-core against steps, per schedule.

    Each schedule keeps its states in memory, so the rows show the schedule's
    own trade; ``auto`` is the defaults (schedule and placement), what
    `magic attribute` does.
    """
    rows = []
    for steps in steps_list:
        cfg = dict(PRESETS[preset], steps=steps)
        first = measure("plain", cfg, device)
        runs = {schedule: measure("magic_core", cfg, device, schedule=schedule,
                                  device_memory="auto" if schedule == "auto" else "1TiB")
                for schedule in schedules}
        plain = _bracketed_plain(first, measure("plain", cfg, device))
        for schedule, r in runs.items():
            rows.append({"steps": steps, "schedule": schedule, "resolved": r["schedule"],
                         "plain_s": plain["total"],
                         "total_s": r["total"], "x_plain": r["total"] / plain["total"],
                         "replayed_steps": r["replayed_steps"],
                         "replayed_updates": r["replayed_updates"],
                         "backward_peak_gib": _peak(r, "backward"),
                         "train_peak_gib": _peak(plain, "train"),
                         "baseline_gib": plain.get("baseline_gib", 0.0)})
            print(f"steps {steps:>4}  {schedule:<9} total {r['total']:7.2f} s  "
                  f"{rows[-1]['x_plain']:5.2f}x plain  replayed {r['replayed_steps']:>5}  "
                  f"backward peak {rows[-1]['backward_peak_gib']:.2f} GiB "
                  f"(plain training {rows[-1]['train_peak_gib']:.2f})", flush=True)
    return {"preset": preset, "device": device, "rows": rows}


def scaling_table(data) -> str:
    """The scaling rows as a markdown table."""
    lines = [f"# Attribution cost against steps ({data['preset']}, {data['device']})", "",
             "| steps | schedule | plain training s | magic-core total s | x plain | replayed steps "
             "| updates applied again | backward peak GiB | plain training peak GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        name = r["schedule"] if r["resolved"] == r["schedule"] else f"{r['schedule']} ({r['resolved']})"
        lines.append(f"| {r['steps']} | {name} | {r['plain_s']:.2f} | {r['total_s']:.2f} "
                     f"| {r['x_plain']:.2f} | {r['replayed_steps']} | {r.get('replayed_updates', 0)} "
                     f"| {r['backward_peak_gib']:.2f} "
                     f"| {r['train_peak_gib']:.2f} |")
    return "\n".join(lines) + "\n"


def plot_scaling(data, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for schedule in sorted({r["schedule"] for r in data["rows"]}):
        rows = [r for r in data["rows"] if r["schedule"] == schedule]
        steps = [r["steps"] for r in rows]
        ax_t.plot(steps, [r["total_s"] for r in rows], marker="o", label=f"magic-core {schedule}")
        ax_m.plot(steps, [r["backward_peak_gib"] for r in rows], marker="o", label=f"backward, {schedule}")
    plain = sorted({(r["steps"], r["plain_s"], r["train_peak_gib"]) for r in data["rows"]})
    ax_t.plot([p[0] for p in plain], [p[1] for p in plain], "k--", marker="s", label="plain training")
    ax_m.plot([p[0] for p in plain], [p[2] for p in plain], "k--", marker="s", label="plain training")
    for ax, label in ((ax_t, "seconds"), (ax_m, "peak memory, GiB")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training steps")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax_t.set_yscale("log")
    fig.suptitle(f"Attribution cost against steps ({data['preset']}, {data['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", default="bergson,magic_core,magic_core_all_memory",
                        help="comma-separated workloads (plain is always run)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the whole sequence this many times; report medians")
    parser.add_argument("--scaling", action="store_true",
                        help="steps 16/64/256 x schedules all/sqrt/log instead; writes a PNG too")
    parser.add_argument("--json", default=None, help="where to write the results (default: "
                        "benchmarks/results/attribution-PRESET[-scaling].json)")
    args = parser.parse_args()
    suffix = "-scaling" if args.scaling else ""
    target = Path(args.json or RESULTS / f"attribution-{args.preset}{suffix}.json")
    if args.scaling:
        data = scaling(args.preset, args.device)
        plot_scaling(data, target.with_suffix(".png"))
        target.with_suffix(".md").write_text(scaling_table(data))
    else:
        names = ["plain"] + [n for n in args.only.split(",") if n and n != "plain"]
        data = compare(args.preset, args.device, names, args.repeat)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
