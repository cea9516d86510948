"""token_heatmap.html: every document's tokens visible beside one outlier, a legend, two hues."""

import re

import pyarrow as pa
import torch
from magic_core.report import heatmap_html


def _page(per_token: torch.Tensor, tokens: list[list[str]]) -> str:
    n = len(tokens)
    table = pa.table({"index": list(range(n)), "source_id": [f"doc-{i}" for i in range(n)],
                      "score": per_token.sum(-1).tolist(), "tokens": tokens})
    return heatmap_html(table, per_token, k=n)


def _colours(page: str) -> dict[str, tuple[str, float]]:
    """title (score) -> (rgb, alpha) of each scored token of the page."""
    found = re.findall(r'title="([^"]+)" style="background:rgba\((\d+,\d+,\d+),([0-9.]+)\)"', page)
    return {title: (rgb, float(alpha)) for title, rgb, alpha in found}


def test_one_token_twenty_times_the_rest_leaves_the_rest_visible():
    # 20 scores: prose at -1e-3 .. -2.7e-3 and +5e-4, one answer letter at -0.06 (~20x).
    prose = [-(1 + 0.1 * i) * 1e-3 for i in range(19)]
    scores = torch.tensor([prose[:10] + [5e-4] + prose[10:18] + [-0.06]], dtype=torch.float64)
    page = _page(scores, [[f"t{i}" for i in range(21)]])
    colours = _colours(page)
    letter = colours[f"{-0.06:.3e}"]
    assert letter == ("37,99,235", 0.85)  # blue, full colour (clipped)
    prose_alphas = [colours[f"{s:.3e}"][1] for s in prose[:18]]
    assert min(prose_alphas) >= 0.25, prose_alphas  # one global linear scale gave them <= 0.05
    assert len(set(prose_alphas)) > 10  # and they keep their differences
    assert colours[f"{5e-4:.3e}"][0] == "220,38,38"  # a positive score: the other hue
    assert set(re.findall(r'<span class=clip title="([^"]+)"', page)) == {f"{-0.06:.3e}"}


def test_the_legend_names_the_scale_and_its_ends():
    scores = torch.tensor([[0.0, 1.0, -2.0]], dtype=torch.float64)
    page = _page(scores, [["a", "b", "c", "d"]])
    assert "class=legend" in page and "class=bar" in page
    assert "Scaling: per document" in page and "95% quantile of |score|" in page
    assert "&minus;q: teaches the query" in page and "+q: works against the query" in page
    assert "q = 1.00e+00 (largest |score| 2.00e+00)" in page  # each document's q beside it


def test_a_document_of_zero_scores_stays_white():
    page = _page(torch.zeros(1, 3, dtype=torch.float64), [["a", "b", "c", "d"]])
    assert {alpha for _, alpha in _colours(page).values()} == {0.0}
