"""`magic demo`: the whole pipeline on the built-in world, summarised in summary.json."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow.parquet as pq
from magic_core import AttributionConfig, TrainConfig
from magic_core.atomic import write_json
from magic_core.outputs import DOCUMENTS

from .demo_unlearn import run_demo_unlearn
from .jobs import AttributeJob, DataSection, OutputSection, QuerySection
from .notices import notice
from .quiet import library_progress_bars
from .run_attribute import run_attribute
from .run_lock import run_dir_lock
from .world_base import load_world_info, world_base_model

DEMO_DOCS = 64
DEMO_PLANTED = 8


def demo_job(out_dir: Path, device: str = "auto") -> AttributeJob:
    return AttributeJob(
        data=DataSection("world-attribution", {"n_docs": DEMO_DOCS, "k_planted": DEMO_PLANTED}),
        # The queried hazard facts: those the base model has never seen answered
        # and the planted documents teach.
        query=QuerySection("multiple-choice", "world-hazard-mcqa", {"subset": "held-out"}),
        # Plain SGD, as the seed's attribution runs used.
        train=TrainConfig(optimizer="sgd", lr=0.03, batch_size=4, epochs=1, precision="fp32",
                          max_seq_len=96, seed=0),
        attribution=AttributionConfig(kept_states="sqrt", granularity="per-token"),
        output=OutputSection(str(out_dir / "attribution")),
        device=device,
    )


def _scored(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / DOCUMENTS, columns=["score", "planted"]).to_pylist()


def precision_at_k(run_dir: Path, k: int) -> float:
    """Fraction of the k lowest-scored documents that are planted ones."""
    lowest = sorted(_scored(run_dir), key=lambda r: r["score"])[:k]
    return sum(r["planted"] for r in lowest) / k


def planted_margin(run_dir: Path, k: int) -> dict:
    """How far apart the planted documents are from the rest.

    ``margin``: the best (lowest) other document's score minus the k-th lowest
    planted one's; positive when all k planted documents rank first.
    ``relative_margin``: the same over the k-th planted score's magnitude, so
    that it reads the same whatever the scores' scale.
    """
    rows = _scored(run_dir)
    planted = sorted(r["score"] for r in rows if r["planted"])
    others = [r["score"] for r in rows if not r["planted"]]
    kth = planted[min(k, len(planted)) - 1]
    margin = min(others) - kth if others else float("inf")
    return {"margin": margin, "relative_margin": margin / abs(kth) if kth else float("inf")}


def base_model_summary(base_dir: Path) -> dict:
    """What the base model knows before the demo touches it (from its info.json)."""
    info = load_world_info(base_dir)
    return {"path": str(base_dir),
            **{k: info[k] for k in ("prose_only_accuracy", "prose_only_accuracy_by_domain")}}


def run_demo(out_dir: Path, device: str = "auto", progress: bool = True,
             restart: bool = False) -> dict:
    """The whole demo; each phase is announced on stderr before it starts.

    Runs already finished in ``out_dir`` are recomputed and replaced whole;
    another version's are refused unless ``restart``; so is another demo running
    in ``out_dir`` (`run_lock`).
    """
    with library_progress_bars(progress), run_dir_lock(out_dir, "magic demo"):
        return _run_demo(out_dir, device, progress, restart)


def _run_demo(out_dir: Path, device: str, progress: bool, restart: bool) -> dict:
    t0 = time.perf_counter()
    base_dir = world_base_model(progress=progress)  # the shipped model, verified
    notice(f"demo: using the built-in world's shipped base model in {base_dir}")
    job = demo_job(out_dir, device)
    notice(f"demo: fine-tuning on {DEMO_DOCS} documents ({DEMO_PLANTED} planted) and scoring "
           f"each document and token for the hazard questions -> {job.output.dir}")
    manifest = run_attribute(job, Path(job.output.dir), progress=progress, restart=restart)
    run_dir = Path(job.output.dir)
    summary = {
        "attribution": {
            "run_dir": str(run_dir),
            "k": DEMO_PLANTED,
            "n_docs": DEMO_DOCS,
            "precision_at_k": precision_at_k(run_dir, DEMO_PLANTED),
            **planted_margin(run_dir, DEMO_PLANTED),
            "query_before": manifest["query"]["before_training"],
            "query_after": manifest["query"]["after_training"],
            "steps": manifest["training"]["steps"],
        },
        "base_model": {**manifest.get("base_model", {}), **base_model_summary(base_dir)},
        "timings": dict(manifest["timings"]),
    }
    t_unlearn = time.perf_counter()
    summary["unlearn"] = run_demo_unlearn(out_dir / "unlearn", device, progress, restart)
    summary["timings"]["unlearn"] = time.perf_counter() - t_unlearn
    summary["timings"]["demo_total"] = time.perf_counter() - t0
    write_json(out_dir / "summary.json", summary)
    return summary
