"""``attribution.sharding`` in attribute job files."""

import textwrap

import pytest
from click.testing import CliRunner
from magic_core import ConfigError
from magic_driver.cli import main
from magic_driver.jobs import load_job


def _job(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_sharding_is_read_from_the_job_and_overrides(tmp_path):
    assert load_job(None).attribution.sharding == "none"
    assert load_job(_job(tmp_path, "attribution:\n  sharding: fsdp\n")).attribution.sharding == "fsdp"
    assert load_job(None, ("attribution.sharding=fsdp",)).attribution.sharding == "fsdp"
    with pytest.raises(ConfigError, match="attribution.sharding: .*did you mean 'fsdp'"):
        load_job(None, ("attribution.sharding=fdsp",))


def test_fsdp_in_a_single_process_is_one_line_before_any_model(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))  # no base model is built
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["attribute", "--set", "attribution.sharding=fsdp",
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "needs a torch.distributed run" in lines[0], result.output
    assert not (tmp_path / "cache").exists() and not out.exists()
