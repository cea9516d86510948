"""recipes, patch, report and completion: what they print, and their refusals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch_dtensor_patch as tdp
from click.testing import CliRunner
from magic_driver.cli import main
from safetensors.torch import save_file


def _invoke(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_recipes_list_and_show():
    listed = _invoke("recipes", "list")
    assert listed.exit_code == 0
    rows = {line.split()[0]: line.split()[1] for line in listed.output.splitlines()[1:]}
    assert rows == {"attribution-weighted": "needed", "gradient-ascent": "-",
                    "gradient-difference": "-", "npo": "-", "npo-attribution": "needed",
                    "rmu": "-", "rmu-attribution": "needed"}
    shown = _invoke("recipes", "show", "gradient-difference")
    assert shown.exit_code == 0 and "  retain_weight: 1.0" in shown.output
    unknown = _invoke("recipes", "show", "gradient-ascend")
    assert unknown.exit_code == 2
    assert unknown.output == "error: unknown recipe 'gradient-ascend'; did you mean 'gradient-ascent'?\n"


def test_patch_status_reports_each_component():
    result = _invoke("patch", "status", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert set(report) == set(tdp.COMPONENTS)
    assert {entry["state"] for entry in report.values()} <= {"upstream", "patched", "missing"}
    text = _invoke("patch", "status").output.splitlines()
    assert [line.split()[0] for line in text] == list(report)


@pytest.mark.slow
def test_patch_verify_exit_code_follows_the_checks():
    proc = subprocess.run([sys.executable, "-m", "magic_driver.cli", "patch", "verify", "--json",
                           "--no-patch"], capture_output=True, text=True, timeout=600)
    result = json.loads(proc.stdout)
    assert result["patched"] is False and len(result["checks"]) == 2
    assert result["ok"] == all(c["ok"] for c in result["checks"])
    assert proc.returncode == (0 if result["ok"] else 1)


def _attribution_run(run):
    run.mkdir()
    per_token = torch.tensor([[0.5, -1.0, 0.0], [2.0, 1.0, 0.5], [-3.0, -1.0, 0.0]],
                             dtype=torch.float64)
    save_file({"per_example": per_token.sum(-1), "per_token": per_token},
              str(run / "scores.safetensors"))
    pq.write_table(pa.table({
        "index": [0, 1, 2], "source_id": ["doc-a", "doc-b", "doc-c"],
        "score": per_token.sum(-1).tolist(), "n_tokens": [3, 3, 3],
        "tokens": [["x", "y", "z"]] * 3, "text_preview": ["a text", "b text", "c text"],
        "planted": [False, False, True],
    }), run / "documents.parquet")
    (run / "manifest.json").write_text(json.dumps(
        {"query": {"description": "hazard MCQA", "before_training": 2.0, "after_training": 1.0}}))


def test_report_rerenders_an_attribution_run(tmp_path):
    run = tmp_path / "run"
    _attribution_run(run)
    result = _invoke("report", run)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"wrote {run / name}" for name in
                                          ("report.md", "score_histogram.png", "token_heatmap.html")]
    report = (run / "report.md").read_text()
    lowest = report.split("lowest scores")[1].split("highest scores")[0]
    # doc-c (-4) before doc-a (-0.5) before doc-b (3.5)
    assert lowest.index("doc-c") < lowest.index("doc-a") < lowest.index("doc-b")
    assert (run / "score_histogram.png").read_bytes()[:4] == b"\x89PNG"
    assert 'title="-3.000e+00"' in (run / "token_heatmap.html").read_text()
    assert not list(run.glob(".*.tmp"))


def _result(lr, hazard):
    metrics = {"forget_accuracy": hazard, "retain_accuracy": 0.9, "forget_loss": 1.0,
               "retain_loss": 2.0}
    return {"recipe": {"name": "gradient-ascent", "options": {}},
            "optim": {"optimizer": "adam", "lr": lr, "batch_size": 4, "steps": 2},
            "before": {**metrics, "forget_accuracy": 0.8}, "after": metrics}


def test_report_rebuilds_a_sweep_table_from_finished_points(tmp_path):
    run = tmp_path / "sweep"
    run.mkdir()
    (run / "sweep.json").write_text(json.dumps({"params": ["lr=1e-5,1e-4"], "points": 2}))
    (run / "001").mkdir()
    (run / "001" / "result.json").write_text(json.dumps(_result(1e-4, 0.25)))
    assert _invoke("report", run).exit_code == 0
    table = json.loads((run / "table.json").read_text())
    assert [r["dir"] for r in table["rows"]] == ["001"]
    assert table["rows"][0]["point"] == ["optim.lr=1e-4"]
    assert table["base"]["forget_accuracy"] == 0.8
    (run / "000").mkdir()
    (run / "000" / "result.json").write_text(json.dumps(_result(1e-5, 0.5)))
    assert _invoke("report", run).exit_code == 0
    rows = json.loads((run / "table.json").read_text())["rows"]
    assert [(r["dir"], r["forget_accuracy"]) for r in rows] == [("000", 0.5), ("001", 0.25)]
    assert "| gradient-ascent |" in (run / "table.md").read_text()


@pytest.mark.parametrize("case", ["missing", "empty", "damaged", "no point done"])
def test_report_refusals(case, tmp_path):
    run = tmp_path / "run"
    if case != "missing":
        run.mkdir()
    if case == "damaged":
        (run / "manifest.json").write_text("{}")
    if case == "no point done":
        (run / "sweep.json").write_text(json.dumps({"params": ["lr=1,2"]}))
    result = _invoke("report", run)
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    expected = {"missing": "does not exist", "empty": "nothing to render",
                "damaged": "lacks scores.safetensors, documents.parquet",
                "no point done": "no finished point"}
    assert expected[case] in result.output


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o nosort -F _magic_completion magic"),
                                          ("zsh", "compdef _magic_completion magic"),
                                          ("fish", "complete --no-files --command magic")])
def test_completion_scripts(shell, marker):
    result = _invoke("completion", shell)
    assert result.exit_code == 0 and marker in result.output
    assert "_MAGIC_COMPLETE" in result.output


def test_the_shell_protocol_completes_commands():
    # What the bash script does on TAB: run `magic` with the words in the environment.
    env = {**os.environ, "_MAGIC_COMPLETE": "bash_complete", "COMP_WORDS": "magic re",
           "COMP_CWORD": "1"}
    magic = Path(sys.executable).parent / "magic"  # the console script: completion keys on its name
    proc = subprocess.run([str(magic)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["plain,recipes", "plain,report"]


def _complete(args, incomplete):
    from click.shell_completion import BashComplete

    return [(c.type, c.value) for c in
            BashComplete(main, {}, "magic", "_MAGIC_COMPLETE").get_completions(args, incomplete)]


def test_submit_completes_presets_and_cluster_profiles():
    offered = _complete(["submit"], "preset:attr-w")
    assert ("plain", "preset:attr-wikitext") in offered and ("file", "preset:attr-w") in offered
    assert _complete(["submit", "job.yaml", "--cluster"], "lo") == [("plain", "local")]
