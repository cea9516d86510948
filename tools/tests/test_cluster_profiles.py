"""Built-in cluster profiles, user profiles replacing them, and `magic clusters init`."""

import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from magic_driver.cli import main


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAGIC_CLUSTER_CONFIG", str(tmp_path / "profiles"))
    monkeypatch.delenv("MAGIC_CLUSTER", raising=False)
    return tmp_path / "profiles"


def _invoke(*args):
    return CliRunner().invoke(main, list(args))


def _activation():
    return f"source {Path(sys.prefix) / 'bin' / 'activate'}"


def test_the_readme_submit_works_with_the_built_in_gh200(profiles):
    result = _invoke("submit", "preset:attr-wikitext", "--cluster", "gh200", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "for cluster profile 'gh200'" in result.output
    assert "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-16}" in result.output
    if sys.prefix != sys.base_prefix:
        assert _activation() in result.output
    assert not profiles.exists()  # nothing written for a built-in profile


def test_list_tells_built_in_from_user_profiles(profiles):
    profiles.mkdir()
    (profiles / "gh200.yaml").write_text("description: our gh200 partition\npartition: gh\n")
    (profiles / "site.yaml").write_text("description: our site\n")
    result = _invoke("clusters", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:-1]}
    assert list(rows) == ["generic", "gh200", "local", "site"]
    assert rows["generic"].split()[1] == "built-in" and rows["local"].split()[1] == "built-in"
    assert f"{profiles / 'gh200.yaml'} (replaces the built-in one)" in rows["gh200"]
    assert rows["gh200"].endswith("our gh200 partition")
    assert str(profiles / "site.yaml") in rows["site"]
    script = _invoke("submit", "preset:attr-wikitext", "--cluster", "gh200", "--dry-run").output
    assert "#SBATCH --partition=gh" in script and "OMP_NUM_THREADS" not in script


def test_init_writes_an_editable_copy_and_keeps_an_existing_one(profiles):
    result = _invoke("clusters", "init", "mine", "--from", "gh200")
    assert result.exit_code == 0, result.output
    written = profiles / "mine.yaml"
    shipped = _invoke("clusters", "show", "gh200").output
    assert written.read_text().startswith("# The seed pipeline's cluster")  # comments kept
    assert _invoke("clusters", "show", "mine").output == shipped
    written.write_text(written.read_text().replace("partition: null", "partition: big"))

    again = _invoke("clusters", "init", "mine")
    assert again.exit_code == 2
    assert again.output == (f"error: {written} exists; edit it, or add --force to replace it "
                            f"with a copy of 'generic'\n")
    assert "partition: big" in written.read_text()

    forced = _invoke("clusters", "init", "mine", "--force")
    assert forced.exit_code == 0, forced.output
    assert yaml.safe_load(written.read_text())["description"].startswith("any Slurm cluster")
    assert [p.name for p in profiles.iterdir()] == ["mine.yaml"]  # no temporary files left


@pytest.mark.parametrize("args, message", [
    (["../escape"], "error: cluster profile name '../escape': use letters, digits"),
    (["ok", "--from", "gh20"], "error: unknown cluster profile 'gh20'"),
])
def test_init_refusals_write_nothing(profiles, args, message):
    result = _invoke("clusters", "init", *args)
    assert result.exit_code == 2
    assert result.output.startswith(message) and result.output.count("\n") == 1, result.output
    assert not profiles.exists()


def test_a_shown_profile_saved_as_a_file_renders_the_same_script(profiles):
    submit = ["submit", "preset:attr-wikitext", "--dry-run", "--cluster"]
    built_in = _invoke(*submit, "generic").output
    profiles.mkdir()
    (profiles / "copy.yaml").write_text(_invoke("clusters", "show", "generic").output)
    copied = _invoke(*submit, "copy").output
    assert copied == built_in.replace("'generic'", "'copy'").replace(
        "--cluster generic", "--cluster copy")
