"""What periodic checkpoints cost: bytes and seconds per checkpoint, and the whole run's slowdown.

The same attribution (the ``cpu`` preset of `attribution.py` by default, its
default memory tiers: kept states beyond 128 MiB spill to disk) runs in this
process under three controls, one after another:

* ``none``: no checkpoint store at all (no durable spills, no digests);
* ``default``: `RunControl` with the default interval (10 minutes): durable
  spills with their digests, and a periodic checkpoint only if the run is that long;
* ``short``: the same with a short interval (``--every``, default 3 s), so that
  several checkpoints land in every phase.

    python benchmarks/checkpoint_cost.py                   # cpu preset (~2 min on 2 cores)
    python benchmarks/checkpoint_cost.py --preset cpu-small --every 1

Writes benchmarks/results/checkpoint-cost.{json,md}. Seconds are this machine's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from attribution import PRESETS, RESULTS, _model, _query_rows, _rows

CONTROLS = ("none", "default", "short")


def run(cfg: dict, control_kind: str, every: float, work: Path) -> dict:
    import magic_core as mc
    import torch
    from magic_core.phase_checkpoint import CheckpointStore
    from magic_core.run_control import DEFAULT_CHECKPOINT_EVERY, RunControl

    rows = _rows(cfg)
    corpus = mc.TokenizedCorpus(rows, [str(i) for i in range(len(rows))], [""] * len(rows),
                                truncated=0, max_seq_len=cfg["seq"])
    run_dir = work / control_kind
    control = None
    if control_kind != "none":
        interval = DEFAULT_CHECKPOINT_EVERY if control_kind == "default" else every
        control = RunControl(CheckpointStore(run_dir / "checkpoints", {"benchmark": cfg}),
                             checkpoint_every=interval)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    result = mc.attribute(
        _model(cfg), None, corpus, mc.LanguageModelObjective.from_token_ids(_query_rows(cfg)),
        mc.TrainConfig(optimizer="adam", lr=1e-4, batch_size=cfg["batch"], shuffle=False,
                       precision="fp32", max_seq_len=cfg["seq"]),
        mc.AttributionConfig(kept_states="auto", granularity="per-token",
                             spill_dir=str(work / "spill")),
        device="cpu", progress=False, control=control,
    )
    total = time.perf_counter() - t0
    saves = control.saves if control is not None else []
    spilled = sorted((run_dir / "kept-states").glob("*.safetensors")) if control else []
    out = {"total_s": total, "schedule": result.schedule, "kept_states": result.kept_states["placed"],
           "kept_gradients": result.kept_gradients["placed"], "checkpoints": saves,
           "spilled_bytes_on_disk_at_end": sum(p.stat().st_size for p in spilled),
           "per_example": result.per_example}
    if control is not None:
        control.finished()
    return out


def summarize(saves: list[dict]) -> dict:
    if not saves:
        return {"count": 0}
    by_phase = {}
    for phase in ("train", "query", "backward"):
        mine = [s for s in saves if s["phase"] == phase]
        if mine:
            by_phase[phase] = {"count": len(mine),
                               "mean_bytes": statistics.mean(s["bytes"] for s in mine),
                               "max_bytes": max(s["bytes"] for s in mine),
                               "mean_s": statistics.mean(s["seconds"] for s in mine),
                               "max_s": max(s["seconds"] for s in mine)}
    return {"count": len(saves), "seconds": sum(s["seconds"] for s in saves),
            "bytes": sum(s["bytes"] for s in saves), "by_phase": by_phase}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
    parser.add_argument("--every", type=float, default=3.0, help="the short interval, seconds")
    parser.add_argument("--name", default="checkpoint-cost",
                        help="results file stem, e.g. checkpoint-cost-before to keep a baseline")
    args = parser.parse_args()
    import torch

    cfg = PRESETS[args.preset]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in CONTROLS:
            results[kind] = run(cfg, kind, args.every, Path(tmp))
            print(kind, f"{results[kind]['total_s']:.1f} s", len(results[kind]["checkpoints"]),
                  "checkpoints", flush=True)
    scores = [results[k].pop("per_example") for k in CONTROLS]
    identical = all(torch.equal(scores[0], s) for s in scores[1:])
    base = results["none"]["total_s"]
    report = {
        "preset": args.preset, "config": cfg, "short_interval_s": args.every,
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads()},
        "scores_identical": identical,
        "runs": {k: {**{x: v for x, v in r.items() if x != "checkpoints"},
                     "slowdown": r["total_s"] / base - 1, "checkpoint_summary": summarize(r["checkpoints"]),
                     "checkpoints": r["checkpoints"]}
                 for k, r in results.items()},
    }
    short = report["runs"]["short"]["checkpoint_summary"]
    if short["count"]:
        # What one checkpoint costs, spread over the default interval.
        per = short["seconds"] / short["count"]
        report["estimated_slowdown_at_default_interval"] = per / 600.0
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Checkpoint cost, preset {args.preset}", "",
             f"Scores of the three runs identical: {identical}.", "",
             "| control | total s | slowdown | checkpoints | bytes written | checkpoint s |",
             "|---|---|---|---|---|---|"]
    for kind, r in report["runs"].items():
        c = r["checkpoint_summary"]
        lines.append(f"| {kind} | {r['total_s']:.1f} | {100 * r['slowdown']:+.1f} % | {c['count']} | "
                     f"{c.get('bytes', 0) / 2**20:.1f} MiB | {c.get('seconds', 0):.2f} |")
    lines += ["", f"Per checkpoint at the short interval ({args.every:g} s), by phase:", "",
              "| phase | count | mean MiB | max MiB | mean s | max s |", "|---|---|---|---|---|---|"]
    for phase, p in short.get("by_phase", {}).items():
        lines.append(f"| {phase} | {p['count']} | {p['mean_bytes'] / 2**20:.1f} | "
                     f"{p['max_bytes'] / 2**20:.1f} | {p['mean_s']:.2f} | {p['max_s']:.2f} |")
    lines += ["", "Totals are wall-clock and vary with the machine's other load; the checkpoints' "
              "own seconds over a run's total are the slowdown they cause."]
    if "estimated_slowdown_at_default_interval" in report:
        lines += ["", "One checkpoint's mean seconds over the default 600 s interval: "
                  f"{100 * report['estimated_slowdown_at_default_interval']:.3f} % slowdown."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
