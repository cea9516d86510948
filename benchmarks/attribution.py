"""Attribution cost against plain training, and magic-core against bergson driven directly.

One run measures the same work three ways, each in a fresh subprocess (so
peak memory is per workload): a plain PyTorch training run (torch.optim, no
checkpoints), bergson's MAGIC driven directly the way the seed scripts did
(Trainer.train with checkpoints written to disk, then Trainer.backward), and
`magic_core.attribute`. Ratios are what to compare across machines; seconds
are this machine's.

    python benchmarks/attribution.py                 # small CPU config (~1 min)
    python benchmarks/attribution.py --preset cpu    # 4 layers, d=256, seq 128, 64 steps
    python benchmarks/attribution.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time

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
    return {"train": time.perf_counter() - t0}


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
    return {"train": t1 - t0, "query": t2 - t1, "backward": t3 - t2}


def magic_core_run(cfg, device):
    import magic_core as mc

    rows = _rows(cfg)
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows),
                                truncated=0, max_seq_len=cfg["seq"])
    result = mc.attribute(
        _model(cfg), None, corpus, mc.LanguageModelObjective.from_token_ids(_query_rows(cfg)),
        mc.TrainConfig(optimizer="adam", lr=1e-4, batch_size=cfg["batch"], shuffle=False,
                       precision="fp32", max_seq_len=cfg["seq"]),
        mc.AttributionConfig(checkpoints="sqrt", granularity="per-token"),
        device=device, progress=False,
    )
    return {k: v for k, v in result.timings.items() if k != "replay"}


def _child(name, cfg, device, queue):
    import torch

    torch.set_num_threads(torch.get_num_threads())
    out = {"plain": plain_training, "bergson": bergson_direct, "magic_core": magic_core_run}[name](cfg, device)
    out["total"] = sum(out.values())
    out["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if device == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    queue.put(out)


def measure(name, cfg, device):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, cfg, device, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    cfg = PRESETS[args.preset]
    results = {name: measure(name, cfg, args.device) for name in ("plain", "bergson", "magic_core")}
    plain = results["plain"]["total"]
    print(f"preset {args.preset} on {args.device}: {cfg}")
    print(f"{'workload':<12} {'train s':>9} {'query s':>9} {'backward s':>11} {'total s':>9} "
          f"{'x plain':>8} {'peak RSS GiB':>13}")
    for name, r in results.items():
        print(f"{name:<12} {r['train']:>9.2f} {r.get('query', 0):>9.2f} {r.get('backward', 0):>11.2f} "
              f"{r['total']:>9.2f} {r['total'] / plain:>8.2f} {r['peak_rss_gib']:>13.2f}")
    ratios = {
        "bergson_over_plain": results["bergson"]["total"] / plain,
        "magic_core_over_plain": results["magic_core"]["total"] / plain,
        "magic_core_over_bergson": results["magic_core"]["total"] / results["bergson"]["total"],
    }
    print("ratios:", json.dumps({k: round(v, 2) for k, v in ratios.items()}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "config": cfg, "device": args.device,
                       "results": results, "ratios": ratios}, f, indent=2)


if __name__ == "__main__":
    main()
