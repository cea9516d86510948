"""The unlearning half of `magic demo`: score the forget corpus, then sweep each recipe's lr.

Every recipe gets the same data, steps and optimizer, and its family's lr
grid (RMU's is on its own scale); its operating point is the smallest lr
that brings hazard accuracy to chance + 10 points, so recipes are compared
where they forget equally well. The full comparison
(every variant, more lrs and seeds) is benchmarks/unlearn_frontier.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import magic_unlearn as mu
import torch
from magic_core import AttributionConfig, TrainConfig
from magic_core.number_format import exact

from .jobs import AttributeJob, DataSection, OutputSection, QuerySection
from .notices import notice
from .run_attribute import run_attribute
from .run_unlearn import prepare, run_unlearn
from .unlearn_jobs import build_job

CHANCE = 0.25
TARGET = CHANCE + 0.10
DEMO_LRS = (5e-4, 8e-4)  # where every token-weight recipe reaches the target (benchmarks: lower lrs do not)
# RMU trains a few MLPs on an activation distance, not every weight on token
# losses: its lrs are on another scale (on the built-in world 5e-4 moved nothing).
RMU_LRS = (1e-3, 3e-3)
# The attribution-weighted variant that keeps the most general accuracy at
# forget accuracy <= TARGET over 40 steps in benchmarks/results/unlearn-frontier.md:
# clip 1 stops the few answer-letter tokens (scores ~20x the prose's) from
# dominating, and the KL term to the base model on retain text keeps the
# shared answer-by-letter skill that ascent on those tokens erodes.
BEST_ATTRIBUTION = {"clip": 1.0, "retain_kl": 10.0}
KL = {"retain_kl": BEST_ATTRIBUTION["retain_kl"]}
# label -> (recipe, options, lrs); each label is a key of summary.json's `unlearn`.
# Gradient ascent and NPO run with the same KL term too: the KL term, not the
# attribution weights, does most of the keeping (with 240 steps and retain_kl
# 20 gradient ascent even does better, see the frontier). RMU keeps the retain
# activations itself (its `alpha`), at its defaults.
DEMO_RECIPES: dict[str, tuple[str, dict, tuple[float, ...]]] = {
    "attribution-weighted": ("attribution-weighted", BEST_ATTRIBUTION, DEMO_LRS),
    "gradient-ascent": ("gradient-ascent", {}, DEMO_LRS),
    "gradient-ascent-kl": ("gradient-ascent", KL, DEMO_LRS),
    "gradient-difference": ("gradient-difference", {}, DEMO_LRS),
    "npo": ("npo", KL, DEMO_LRS),
    "npo-attribution": ("npo-attribution", BEST_ATTRIBUTION, DEMO_LRS),
    "rmu": ("rmu", {}, RMU_LRS),
    "rmu-attribution": ("rmu-attribution", {}, RMU_LRS),
}


def scores_job(out_dir: Path, query_dataset: str, device: str) -> AttributeJob:
    """Per-token scores of the forget corpus for one query (same training as the demo's)."""
    return AttributeJob(
        data=DataSection("world-forget-corpus", {}),
        query=QuerySection("multiple-choice", query_dataset, {}),
        train=TrainConfig(optimizer="sgd", lr=0.03, batch_size=4, epochs=1, precision="fp32",
                          max_seq_len=96, seed=0),
        attribution=AttributionConfig(kept_states="sqrt", granularity="per-token"),
        output=OutputSection(str(out_dir)),
        device=device,
    )


def operating_point(rows: list[dict]) -> dict:
    """The smallest-lr row at or below the target forget accuracy (else the last row)."""
    hits = [r for r in rows if r["forget_accuracy"] <= TARGET + 1e-9]
    return min(hits, key=lambda r: r["params"]["lr"]) if hits else rows[-1]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Intra-op threads for the block only.

    The world model is tiny: on CPU, extra threads cost more in
    synchronisation than they save, and on a busy machine they make each run
    take several times as long.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_demo_unlearn(out_dir: Path, device: str = "auto", progress: bool = True,
                     restart: bool = False) -> dict:
    with torch_threads(1):
        return _run_demo_unlearn(out_dir, device, progress, restart)


def _run_demo_unlearn(out_dir: Path, device: str, progress: bool, restart: bool) -> dict:
    forget_dir, retain_dir = out_dir / "scores-forget", out_dir / "scores-retain"
    notice("demo: scoring every token of the forget corpus for the hazard questions and for "
           "the general ones (the weights of attribution-weighted unlearning)")
    run_attribute(scores_job(forget_dir, "world-hazard-mcqa", device), forget_dir, progress,
                  restart=restart)
    run_attribute(scores_job(retain_dir, "world-general-mcqa", device), retain_dir, progress,
                  restart=restart)
    config = {"scores": {"forget": str(forget_dir), "retain": str(retain_dir)},
              "device": device, "output": {"save_model": False}}
    prepared = prepare(build_job(config), progress)
    summary: dict = {"base": {k: prepared.before[k] for k in ("forget_accuracy", "retain_accuracy")},
                     "target_forget_accuracy": TARGET, "lrs": list(DEMO_LRS)}
    runs = sum(len(lrs) for _, _, lrs in DEMO_RECIPES.values())
    notice(f"demo: unlearning with {len(DEMO_RECIPES)} recipes, {runs} runs over their learning "
           f"rates, each evaluated, then relearned -> {out_dir}")
    all_rows = []
    for label, (recipe, options, lrs) in DEMO_RECIPES.items():
        rows = []
        for lr in lrs:
            job = build_job({**config, "recipe": {"name": recipe, "options": options},
                             "optim": {"lr": lr}})
            result = run_unlearn(job, out_dir / "runs" / f"{label}-lr{exact(lr)}", progress, prepared,
                                 restart=restart)
            rows.append(mu.flat_row(result))
        point = operating_point(rows)
        summary[label] = {
            "recipe": recipe, "lr": point["params"]["lr"], "options": options, "lrs": list(lrs),
            "forget_accuracy": point["forget_accuracy"], "retain_accuracy": point["retain_accuracy"],
            "after_relearn": {"forget_accuracy": point["relearn_forget_accuracy"],
                              "retain_accuracy": point["relearn_retain_accuracy"]},
            "sweep": [{"lr": r["params"]["lr"], "forget_accuracy": r["forget_accuracy"],
                       "retain_accuracy": r["retain_accuracy"]} for r in rows],
        }
        all_rows += rows
    mu.write_table(out_dir, all_rows, prepared.before)
    return summary
