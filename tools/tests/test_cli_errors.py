"""User mistakes: one line on stderr, exit code 2, no traceback, nothing half-written."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner
from magic_driver.cli import main


def _job(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


CASES = {
    "unknown key": ("train:\n  lrr: 1e-3\n", "train.lrr: unknown key; did you mean 'lr'?"),
    "wrong type": ("train:\n  batch_size: four\n", "train.batch_size: expected an integer"),
    "bf16": ("train:\n  precision: bf16\n", "precision 'bf16' is refused"),
    "unknown objective": ("query:\n  objective: rouge\n", "query.objective: expected one of"),
    "unknown dataset": ("data:\n  dataset: wikitxt\n", "unknown dataset 'wikitxt'"),
    "too many docs": (
        "data:\n  dataset: world-attribution\n  n_docs: 500\n",
        "data.n_docs=500 but dataset 'world-attribution' has only 64 rows",
    ),
    "contrast without parts": ("query:\n  objective: contrast\n", "needs query.positive and query.negative"),
    "not yaml": ("train: [\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_job_files_get_one_clear_line_and_exit_2(case, tmp_path, monkeypatch):
    # Refusals happen before any model is built, so no base model is needed.
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    text, message = CASES[case]
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["attribute", _job(tmp_path, text), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert not out.exists()


def test_missing_job_file_and_bad_override(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["attribute", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(main, ["attribute", "--set", "train.lr"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


def test_a_real_process_prints_no_traceback(tmp_path):
    job = _job(tmp_path, "train:\n  precision: fp16\n")
    proc = subprocess.run(
        [sys.executable, "-m", "magic_driver.cli", "attribute", job], capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
