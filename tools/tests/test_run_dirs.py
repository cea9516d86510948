"""`magic status` and `magic report` on every kind of directory magic writes, built by the real
commands on a tiny model: an unlearning run, a sweep, the demo's layout, an unfinished run."""

import json

import magic_unlearn as mu
import pytest
import yaml
from click.testing import CliRunner
from driver_tests import sibling
from magic_driver.cli import main
from magic_driver.run_unlearn import prepare, run_unlearn
from magic_driver.unlearn_jobs import build_job

config = sibling("test_unlearn_cli").config  # a tiny saved model, its scores and unlearn.yaml
_attribution_run = sibling("test_info_cli")._attribution_run


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _rows(output: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in
            (line.split(": ", 1) for line in output.splitlines() if ": " in line)}


def test_an_unlearning_run_shows_each_phase_with_the_steps_it_ran(config, tmp_path):
    res = _invoke("unlearn", config, "--set", "optim.steps=3", "--set", "relearn.steps=2",
                  "--quiet")
    assert res.exit_code == 0, res.output
    run = tmp_path / "out"
    progress = json.loads((run / "progress.json").read_text())
    assert [(h["phase"], h["step"], h["total"]) for h in progress["history"]] == [
        ("unlearn", 3, 3), ("evaluate", 0, 0), ("relearn", 2, 2), ("evaluate", 0, 0)]

    status = _invoke("status", run, "--no-slurm")
    assert status.exit_code == 0, status.output
    rows = _rows(status.output)
    assert rows["kind"] == "unlearning run" and rows["state"] == "done"
    assert rows["phases done"] == "unlearn 3/3 steps, evaluate, relearn 2/2 steps, evaluate"
    assert "1/1" not in status.output and "done: done" not in status.output
    assert rows["result"].startswith("attribution-weighted lr=0.0001, 3 steps: hazard acc ")

    (run / "table.md").unlink()
    report = _invoke("report", run)
    assert report.exit_code == 0, report.output
    assert f"wrote {run / 'table.md'}" in report.output
    assert "| attribution-weighted |" in (run / "table.md").read_text()


def test_a_sweep_lists_its_points_and_its_table_keeps_close_lrs_apart(config, tmp_path):
    res = _invoke("sweep", config, "--param", "lr=5e-4,8e-4", "--set", "output.save_model=false",
                  "--quiet")
    assert res.exit_code == 0, res.output
    run = tmp_path / "out"
    status = _invoke("status", run, "--no-slurm")
    assert status.exit_code == 0, status.output
    rows = _rows(status.output)
    assert rows["kind"] == "sweep over lr=5e-4,8e-4"
    assert rows["state"] == "done: all 2 runs"
    assert rows["point 000"].startswith("unlearning run, done; attribution-weighted lr=0.0005,")
    assert rows["point 001"].startswith("unlearning run, done; attribution-weighted lr=0.0008,")

    (run / "table.md").unlink()
    assert _invoke("report", run).exit_code == 0
    table = (run / "table.md").read_text()
    assert "lr=0.0005," in table and "lr=0.0008," in table and "lr=0.001," not in table


def test_a_sweep_over_another_grid_is_refused_then_replaced_with_restart(config, tmp_path):
    args = ("sweep", config, "--set", "output.save_model=false", "--quiet")
    assert _invoke(*args, "--param", "lr=5e-4").exit_code == 0
    run = tmp_path / "out"
    refused = _invoke(*args, "--param", "lr=8e-4")
    assert refused.exit_code == 2 and "--restart" in refused.output, refused.output
    assert "lr=0.0005," in (run / "table.md").read_text()
    replaced = _invoke(*args, "--param", "lr=8e-4", "--restart")
    assert replaced.exit_code == 0, replaced.output
    table = (run / "table.md").read_text()
    assert "lr=0.0008," in table and "lr=0.0005," not in table


@pytest.fixture
def demo_layout(config, tmp_path):
    """The layout `magic demo` writes, from real unlearning runs (the demo's own needs the
    world's base model, minutes to train): summary.json, attribution/, unlearn/ with runs/
    and table.json."""
    root = tmp_path / "demo"
    root.mkdir()
    _attribution_run(root / "attribution")
    (root / "summary.json").write_text(json.dumps({"attribution": {
        "k": 8, "precision_at_k": 0.875, "query_before": 4.25, "query_after": 3.49}}))
    cfg = yaml.safe_load(config.read_text())
    cfg["output"] = {"save_model": False}
    prepared = prepare(build_job(cfg), progress=False)
    rows = []
    for lr in (5e-4, 8e-4):
        job = build_job({**cfg, "recipe": {"name": "gradient-ascent"}, "optim": {"lr": lr, "steps": 2}})
        result = run_unlearn(job, root / "unlearn" / "runs" / f"gradient-ascent-lr{lr}",
                             progress=False, prepared=prepared)
        rows.append(mu.flat_row(result))
    _attribution_run(root / "unlearn" / "scores-forget")
    mu.write_table(root / "unlearn", rows, prepared.before)
    return root


def test_the_demo_root_and_its_unlearn_folder_are_understood(demo_layout):
    status = _invoke("status", demo_layout, "--no-slurm")
    assert status.exit_code == 0, status.output
    rows = _rows(status.output)
    assert rows["kind"] == "magic demo" and rows["state"] == "done: all 4 runs"
    assert rows["result"].startswith("attribution: precision@8 0.875")
    assert rows["unlearn/runs/gradient-ascent-lr0.0005"].startswith(
        "unlearning run, done; gradient-ascent lr=0.0005, 2 steps")
    assert {"attribution", "unlearn/scores-forget", "unlearn/runs/gradient-ascent-lr0.0008"} <= set(rows)

    unlearn = demo_layout / "unlearn"
    status = _invoke("status", unlearn, "--no-slurm")
    assert status.exit_code == 0, status.output
    rows = _rows(status.output)
    assert rows["kind"].startswith("magic demo unlearning") and rows["table"] == str(
        unlearn / "table.md")
    assert {"runs/gradient-ascent-lr0.0005", "runs/gradient-ascent-lr0.0008",
            "scores-forget"} <= set(rows)

    (unlearn / "table.md").unlink()
    report = _invoke("report", demo_layout)
    assert report.exit_code == 0, report.output
    written = {line.removeprefix("wrote ") for line in report.output.splitlines()}
    assert {str(demo_layout / "attribution" / "token_heatmap.html"), str(unlearn / "table.md"),
            str(unlearn / "runs" / "gradient-ascent-lr0.0008" / "table.md")} <= written
    table = (unlearn / "table.md").read_text()
    assert "lr=0.0005," in table and "lr=0.0008," in table


def test_report_on_an_unfinished_run_says_so_and_skips_it_inside_a_collection(tmp_path):
    running = {"status": "running", "phase": "unlearn", "step": 3, "total": 10,
               "phases_done": [], "last_checkpoint": None, "updated": "2026-01-02T03:04:09+00:00",
               "host": "elsewhere", "pid": 1, "slurm_job_id": None}
    run = tmp_path / "runs" / "one"
    run.mkdir(parents=True)
    (run / "progress.json").write_text(json.dumps(running))
    alone = _invoke("report", run)
    assert alone.exit_code == 2 and alone.output.count("\n") == 1
    assert alone.output.startswith("error: ") and "not finished" in alone.output

    _attribution_run(tmp_path / "runs" / "two")
    both = CliRunner().invoke(main, ["report", str(tmp_path / "runs")])
    assert both.exit_code == 0, both.output
    assert f"skipped {run}: not finished" in both.stderr
    assert f"wrote {tmp_path / 'runs' / 'two' / 'report.md'}" in both.stdout
    status = _rows(_invoke("status", tmp_path / "runs", "--no-slurm").output)
    assert status["state"] == "running: 1 of 2 runs done, 1 running"
    assert status["one"] == "unlearning run, running: unlearn step 3/10"


def test_the_file_names_status_reads_are_those_the_writers_write():
    from magic_core import outputs, progress
    from magic_driver import run_files, submit

    assert run_files.PROGRESS == progress.FILENAME and run_files.MANIFEST == outputs.MANIFEST
    assert (run_files.SLURM_DIR, run_files.SUBMISSION) == (submit.SLURM_DIR, submit.SUBMISSION)
