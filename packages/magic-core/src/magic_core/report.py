"""What people look at: top/bottom documents, a per-token heat map and a histogram."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from .atomic import atomic_path, write_text
from .heatmap import heatmap_page

HISTOGRAM = "score_histogram.png"
HEATMAP = "token_heatmap.html"
SUMMARY = "report.md"


def _ranked(table: pa.Table, k: int) -> tuple[list[dict], list[dict]]:
    rows = table.to_pylist()
    ranked = sorted(rows, key=lambda r: r["score"])
    return ranked[:k], ranked[::-1][:k]


def markdown_report(table: pa.Table, manifest: dict, k: int = 10) -> str:
    lowest, highest = _ranked(table, k)
    extra = [c for c in ("planted",) if c in table.column_names]

    def rows(docs):
        head = "| rank | index | source id | score | " + " | ".join(extra) + (" |" if extra else "") + " text |"
        sep = "|---" * (5 + len(extra)) + "|"
        lines = [head, sep]
        for i, d in enumerate(docs, 1):
            cells = [str(i), str(d["index"]), d["source_id"], f"{d['score']:.4g}"] + [
                str(d[c]) for c in extra
            ]
            text = d["text_preview"].replace("|", "\\|").replace("\n", " ")[:100]
            lines.append("| " + " | ".join(cells + [text]) + " |")
        return "\n".join(lines)

    q = manifest.get("query", {})
    return (
        "# Attribution report\n\n"
        f"Query: {q.get('description', '')}\n\n"
        f"Query value: {q.get('before_training', float('nan')):.6g} before fine-tuning, "
        f"{q.get('after_training', float('nan')):.6g} after.\n\n"
        "Score = d(query)/d(document weight). **Negative: training on the document lowers "
        "the query loss** (it teaches what the query asks).\n\n"
        f"## {k} lowest scores (most helpful to the query)\n\n{rows(lowest)}\n\n"
        f"## {k} highest scores (most harmful to the query)\n\n{rows(highest)}\n\n"
        f"Files: `scores.safetensors`, `documents.parquet`, `manifest.json`, `{HEATMAP}`, "
        f"`{HISTOGRAM}`.\n"
    )


def write_histogram(path: Path, scores: torch.Tensor, groups: dict[str, list[bool]] | None = None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = scores.double().cpu().numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    # Shared edges, so the groups' bars are comparable.
    bins = np.histogram_bin_edges(values, bins=max(10, int(math.sqrt(len(values))) * 2)).tolist()
    if groups:
        for label, mask in groups.items():
            ax.hist(values[mask], bins=bins, alpha=0.6, label=label)
        ax.legend()
    else:
        ax.hist(values, bins=bins)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("score = d(query) / d(document weight)   (negative: lowers the query loss)")
    ax.set_ylabel("documents")
    ax.set_title("Per-document attribution scores")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def heatmap_html(table: pa.Table, per_token: torch.Tensor, k: int = 10) -> str:
    """Tokens of the k lowest- and k highest-scored documents, coloured by token score."""
    lowest, highest = _ranked(table, k)
    return heatmap_page([("Lowest scores: teach the query", lowest),
                         ("Highest scores: work against the query", highest)], per_token)


def write_report(out_dir: Path, table: pa.Table, per_example: torch.Tensor,
                 per_token: torch.Tensor | None, manifest: dict) -> None:
    write_text(out_dir / SUMMARY, markdown_report(table, manifest))
    groups = None
    if "planted" in table.column_names:
        planted = table.column("planted").to_pylist()
        groups = {"planted": planted, "other": [not p for p in planted]}
    write_histogram(out_dir / HISTOGRAM, per_example, groups)
    if per_token is not None:
        write_text(out_dir / HEATMAP, heatmap_html(table, per_token))
