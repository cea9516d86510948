"""Does the demo's attribution find the planted documents whatever base model it starts from?

Issue 19: the demo's headline must not hang on one lucky base model. For each
pretraining seed (seed 0 is the shipped model; the others are built here on one
thread and cached under $MAGIC_CACHE), this runs the demo's attribution job
(64 documents, 8 planted, the held-out hazard questions as query) and reports
precision@8, the margin between the 8th planted document's score and the best
other one's (positive: separated), and what the base model answers of the
facts it read in prose only.

    python benchmarks/world_seeds.py                # results/world-seeds.{md,json}; ~4 min a build
    python benchmarks/world_seeds.py --seeds 0      # the shipped model only (~30 s)
    python benchmarks/world_seeds.py --render       # rewrite the .md from the .json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from magic_core.atomic import write_json, write_text
from magic_datasets.world import WorldConfig
from magic_driver.demo import DEMO_PLANTED, demo_job, planted_margin, precision_at_k
from magic_driver.demo_unlearn import torch_threads
from magic_driver.jobs import ModelSection
from magic_driver.run_attribute import run_attribute
from magic_driver.world_base import WORLD_PRETRAINING, load_world_info, world_base_model

RESULTS = Path(__file__).parent / "results"
TARGET_PRECISION = 0.9
TARGET_PROSE_ONLY = 0.7


def measure(seed: int, work: Path) -> dict:
    train = dataclasses.replace(WORLD_PRETRAINING, seed=seed)
    t0 = time.perf_counter()
    base = world_base_model(WorldConfig(), train=train, progress=True)
    built = time.perf_counter() - t0
    job = dataclasses.replace(demo_job(work / f"seed{seed}"), model=ModelSection(str(base)))
    with torch_threads(1):
        manifest = run_attribute(job, Path(job.output.dir), progress=False)
    info = load_world_info(base)
    run = Path(job.output.dir)
    return {
        "seed": seed, "shipped": seed == WORLD_PRETRAINING.seed,
        "precision_at_k": precision_at_k(run, DEMO_PLANTED), **planted_margin(run, DEMO_PLANTED),
        "query_before": manifest["query"]["before_training"],
        "query_after": manifest["query"]["after_training"],
        **{k: info[k] for k in ("forget_accuracy", "retain_accuracy", "prose_only_accuracy",
                                "prose_only_accuracy_by_domain")},
        "build_seconds": built,
    }


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(results: dict) -> str:
    lines = [
        "# Built-in world: attribution across independently built base models",
        "",
        "`python benchmarks/world_seeds.py`. Each row is one base model (pretraining seed; "
        "seed 0 is the shipped one) running the demo's attribution job: 64 documents, "
        f"{DEMO_PLANTED} planted, query = the held-out hazard questions. margin = best "
        "non-planted score minus the 8th planted score (positive: every planted document ranks "
        "first); relative = margin / |8th planted score|. prose-only = accuracy on the questions "
        "whose facts pretraining states in prose and never quizzes (chance 0.25; in this world "
        "only the held-out hazard facts, '-': none).",
        "",
        "| seed | precision@8 | margin | relative | query loss before -> after | "
        "prose-only hazard | prose-only general | hazard (all) | general (all) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["runs"]:
        by = r["prose_only_accuracy_by_domain"]
        lines.append(
            f"| {r['seed']}{' (shipped)' if r['shipped'] else ''} | {r['precision_at_k']:.3f} | "
            f"{r['margin']:.3g} | {r['relative_margin']:.2f} | "
            f"{r['query_before']:.3f} -> {r['query_after']:.3f} | {_share(by['hazard'])} | "
            f"{_share(by['general'])} | {r['forget_accuracy']:.3f} | {r['retain_accuracy']:.3f} |")
    ok_p = all(r["precision_at_k"] >= TARGET_PRECISION for r in results["runs"])
    ok_a = all(share is not None and share >= TARGET_PROSE_ONLY for r in results["runs"]
               for share in r["prose_only_accuracy_by_domain"].values())
    lines += ["", f"- precision@8 >= {TARGET_PRECISION} for every seed: {'yes' if ok_p else 'NO'}",
              f"- prose-only accuracy >= {TARGET_PROSE_ONLY} in both domains for every seed: "
              f"{'yes' if ok_a else 'NO'}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()
    if args.render:
        results = json.loads((RESULTS / "world-seeds.json").read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            results = {"runs": [measure(seed, Path(tmp)) for seed in args.seeds]}
        write_json(RESULTS / "world-seeds.json", results)
    write_text(RESULTS / "world-seeds.md", render(results))
    print(render(results))


if __name__ == "__main__":
    main()
