"""token_heatmap.html: each document's tokens coloured by their attribution scores.

Scores within one document span orders of magnitude (an answer letter's is
~20x the prose's around it), so one linear scale over all documents leaves
the prose white. Each document is scaled by a high quantile of its own
|scores| instead; tokens beyond it are clipped to full colour and outlined.
The sign keeps its own hue: blue teaches the query (lowers its loss), red
works against it.
"""

from __future__ import annotations

import html

import numpy as np
import torch

# Full colour from this quantile of a document's |scores| up: a few tokens may
# clip, the rest keep their differences.
QUANTILE = 0.95
TEACHES = "37,99,235"  # blue: negative score, training on it lowers the query loss
OPPOSES = "220,38,38"  # red: positive score
_MAX_ALPHA = 0.85  # full colour still leaves the token's text readable


def document_scale(scores: np.ndarray) -> float:
    """The |score| a document's tokens reach full colour at; 0 when every score is 0."""
    magnitudes = np.abs(scores[np.isfinite(scores)])
    if magnitudes.size == 0:
        return 0.0
    # An observed value, not one interpolated toward the outlier above it.
    scale = float(np.quantile(magnitudes, QUANTILE, method="lower"))
    return scale if scale > 0 else float(magnitudes.max())


def _span(token: str, score: float | None, scale: float) -> str:
    if score is None:  # the first token predicts nothing and has no score
        return f'<span class=none title="no score">{html.escape(token)}</span>'
    fraction = min(abs(score) / scale, 1.0) if scale > 0 else 0.0
    clipped = " class=clip" if scale > 0 and abs(score) > scale else ""
    rgb = TEACHES if score < 0 else OPPOSES
    return (f'<span{clipped} title="{score:.3e}" '
            f'style="background:rgba({rgb},{fraction * _MAX_ALPHA:.3f})">{html.escape(token)}</span>')


def document_html(doc: dict, token_scores: torch.Tensor) -> str:
    """Column t of the per-token scores weights the prediction of token t + 1, so token j
    is coloured by column j - 1."""
    tokens = doc["tokens"]
    scores = token_scores.double().cpu().numpy()[: max(len(tokens) - 1, 0)]
    scale = document_scale(scores)
    spans = [_span(tok, float(scores[j - 1]) if 0 < j <= len(scores) else None, scale)
             for j, tok in enumerate(tokens)]
    largest = float(np.abs(scores).max()) if scores.size else 0.0
    return (f"<div class=doc><div class=head><b>#{doc['index']}</b> "
            f"{html.escape(doc['source_id'])} · document score {doc['score']:.4g} · "
            f"<span class=scale>q = {scale:.2e} (largest |score| {largest:.2e})</span></div>"
            f"{' '.join(spans)}</div>")


def legend_html() -> str:
    percent = f"{QUANTILE:.0%}"
    return (
        "<div class=legend>"
        "<div class=bar></div>"
        "<div class=ends><span>&minus;q: teaches the query (training on it lowers the query "
        "loss)</span><span>0</span><span>+q: works against the query</span></div>"
        f"<p><b>Scaling: per document.</b> q is the {percent} quantile of |score| over the "
        "document's tokens, printed beside it; a token's colour is its score / q, clipped at "
        "&plusmn;1 (clipped tokens are <span class=clip>outlined</span>). Colours compare "
        "tokens within a document, not across documents: the document score says how much "
        "the document matters. Hover a token for its exact score.</p></div>"
    )


STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto}"
    ".doc{margin:1em 0;line-height:1.9}.head{font-size:90%;color:#333}"
    ".scale{color:#666}span{padding:1px 2px;border-radius:3px}"
    ".clip{outline:1.5px solid #111;outline-offset:-1px}.none{color:#888}"
    ".legend{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:1em 0}"
    f".bar{{height:1.2em;border-radius:3px;background:linear-gradient(to right,"
    f"rgba({TEACHES},{_MAX_ALPHA}),rgba({TEACHES},0) 50%,rgba({OPPOSES},0) 50%,"
    f"rgba({OPPOSES},{_MAX_ALPHA}))}}"
    ".ends{display:flex;justify-content:space-between;font-size:85%}"
)


def heatmap_page(groups: list[tuple[str, list[dict]]], per_token: torch.Tensor) -> str:
    """A page of ``(title, documents)`` sections; documents as rows of documents.parquet."""
    body = "".join(
        f"<h2>{html.escape(title)}</h2>"
        + "".join(document_html(d, per_token[d["index"]]) for d in docs)
        for title, docs in groups
    )
    return (
        "<!doctype html><meta charset=utf-8><title>Per-token attribution</title>"
        f"<style>{STYLE}</style><h1>Per-token attribution</h1>" + legend_html() + body
    )
