"""`magic demo` and `magic attribute` end to end on the built-in world (real base model)."""

import json

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from click.testing import CliRunner
from magic_driver.cli import main
from magic_driver.world_shipped import SHIPPED_DIR
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def test_demo_finds_the_planted_documents_and_writes_a_complete_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--quiet"])
    assert result.exit_code == 0, result.output
    notices = [line for line in result.stderr.splitlines() if line.startswith("magic: ")]
    # Issue 20: every phase is announced on stderr; --quiet leaves no progress bar, the
    # libraries' own included; stdout stays JSON. Issue 19: the base model is the shipped
    # one, verified, never rebuilt (the cache stays empty), so every machine gets these numbers.
    assert notices[0] == f"magic: demo: using the built-in world's shipped base model in {SHIPPED_DIR}"
    assert all(n.split(":")[1].strip() == "demo" for n in notices[1:]) and len(notices) >= 4
    assert not (tmp_path / "cache" / "world-base").exists()
    for bar in ("it/s", "\r", "█", "Pretraining", "Training:", "Backward:", "Loading weights",
                "Writing model shards", "Saving the dataset"):
        assert bar not in result.output, bar
    assert json.loads(result.stdout)["attribution"]["k"] == 8
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    att = summary["attribution"]
    assert att["k"] == 8 and att["n_docs"] == 64
    # The planted documents rank first, by a margin well above float noise between
    # machines (the shipped weights are the same everywhere; only kernels differ).
    assert att["precision_at_k"] >= 0.9
    assert att["margin"] > 0 and att["relative_margin"] > 0.05
    base = summary["base_model"]
    assert base["forget_accuracy"] >= 0.7 and base["retain_accuracy"] >= 0.9
    # Reported for issue 19: facts read only in prose (here the held-out hazard facts,
    # which the planted documents then teach) are answered near or below chance.
    assert 0.0 <= base["prose_only_accuracy"] <= 1.0
    assert base["prose_only_accuracy"] == base["prose_only_accuracy_by_domain"]["hazard"]
    assert att["query_after"] < att["query_before"]  # the planted documents teach the query

    # Unlearning (issue 5): at their operating points (forget accuracy <= chance + 10
    # points where reached), attribution weights with the KL retain term keep far more
    # general accuracy than plain gradient ascent (0.91 vs 0.31 on these fixed seeds);
    # gradient ascent with the same KL term is reported beside them.
    unlearn = summary["unlearn"]
    aw, ga = unlearn["attribution-weighted"], unlearn["gradient-ascent"]
    ga_kl = unlearn["gradient-ascent-kl"]
    assert aw["options"]["retain_kl"] == ga_kl["options"]["retain_kl"] > 0
    assert aw["forget_accuracy"] <= unlearn["target_forget_accuracy"]
    assert ga["forget_accuracy"] <= unlearn["target_forget_accuracy"]
    assert aw["retain_accuracy"] >= ga["retain_accuracy"] + 0.3
    assert 0.0 <= ga_kl["retain_accuracy"] <= 1.0 and len(ga_kl["sweep"]) == len(unlearn["lrs"])
    # Issue 19: the strong baselines and their attribution-weighted variants, each at
    # its own operating point on its own lr grid.
    for family, recipe in (("rmu", "rmu"), ("rmu-attribution", "rmu-attribution"),
                           ("npo", "npo"), ("npo-attribution", "npo-attribution")):
        entry = unlearn[family]
        assert entry["recipe"] == recipe and len(entry["sweep"]) == len(entry["lrs"]) >= 1
        assert entry["lr"] in entry["lrs"]
        for key in ("forget_accuracy", "retain_accuracy"):
            assert 0.0 <= entry[key] <= 1.0 and 0.0 <= entry["after_relearn"][key] <= 1.0

    run = tmp_path / "demo" / "attribution"
    scores = load_file(run / "scores.safetensors")
    assert scores["per_token"].shape[0] == 64
    assert torch.allclose(scores["per_token"].sum(-1), scores["per_example"])
    table = pq.read_table(run / "documents.parquet").to_pylist()
    assert [r["index"] for r in table] == list(range(64))
    assert {"source_id", "score", "tokens", "text_preview", "planted"} <= set(table[0])
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["fingerprints"]["dataset"] and manifest["fingerprints"]["tokenizer"]
    assert manifest["versions"]["torch"].startswith("2.")
    assert (run / "score_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<span" in (run / "token_heatmap.html").read_text()
    assert not list(run.glob(".*.tmp"))

    # A configured run with the demo's settings reproduces the demo's scores exactly.
    job = {
        "data": {"dataset": "world-attribution", "options": {"n_docs": 64, "k_planted": 8}},
        "query": {"dataset": "world-hazard-mcqa", "options": {"subset": "held-out"}},
        "train": {"optimizer": "sgd", "lr": 0.03, "batch_size": 4, "max_seq_len": 96},
        "attribution": {"kept_states": "log", "granularity": "per-token"},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    result = CliRunner().invoke(
        main, ["attribute", str(tmp_path / "job.yaml"), "--out", str(tmp_path / "again"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "it/s" not in result.output and "building" not in result.output  # quiet, and shipped
    again = load_file(tmp_path / "again" / "scores.safetensors")
    assert torch.allclose(again["per_example"], scores["per_example"], rtol=1e-5, atol=1e-9)

    # Every folder the demo wrote is one `magic status` and `magic report` understand.
    demo = tmp_path / "demo"
    for folder in (demo, run, demo / "unlearn", demo / "unlearn" / "runs" / "gradient-ascent-lr0.0005"):
        status = CliRunner().invoke(main, ["status", str(folder), "--no-slurm"])
        assert status.exit_code == 0 and "\nstate:" in status.output, status.output
    report = CliRunner().invoke(main, ["report", str(demo)])
    assert report.exit_code == 0, report.output
    assert f"wrote {demo / 'unlearn' / 'table.md'}" in report.output
    assert "lr=0.0005," in (demo / "unlearn" / "table.md").read_text()
