"""The shipped base model of the default world: verified, complete, and what the docs say it is."""

import json
import shutil

import magic_datasets as md
import pytest
from click.testing import CliRunner
from magic_core import ConfigError
from magic_core.evaluation import multiple_choice_accuracy
from magic_datasets.world import World, build_tokenizer
from magic_driver import world_shipped
from magic_driver.cli import main
from magic_driver.world_base import load_world_base, world_base_dir, world_base_model
from magic_driver.world_model_digests import SHIPPED_SHA256


def test_the_default_world_uses_the_shipped_files_and_every_digest_matches(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGIC_CACHE", str(tmp_path / "cache"))
    assert world_base_dir() == world_shipped.SHIPPED_DIR
    assert world_base_model() == world_shipped.SHIPPED_DIR
    assert not (tmp_path / "cache").exists()  # nothing built, nothing cached
    assert {"model.safetensors", "config.json", "info.json", "tokenizer.json"} <= set(SHIPPED_SHA256)
    on_disk = {p.name for p in world_shipped.SHIPPED_DIR.iterdir()}
    assert on_disk == set(SHIPPED_SHA256)  # nothing shipped unverified
    assert (world_shipped.SHIPPED_DIR / "model.safetensors").stat().st_size < 5 * 2**20


def test_the_shipped_tokenizer_is_the_one_jobs_build_for_builtin_world_base():
    _, shipped, _ = load_world_base(world_shipped.SHIPPED_DIR)
    assert md.tokenizer_fingerprint(shipped) == md.tokenizer_fingerprint(build_tokenizer(World()))


@pytest.fixture
def damaged(tmp_path, monkeypatch):
    copy = tmp_path / "world_model"
    shutil.copytree(world_shipped.SHIPPED_DIR, copy)
    monkeypatch.setattr(world_shipped, "SHIPPED_DIR", copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    return copy


def test_a_damaged_shipped_file_is_refused_naming_it_and_the_fix(damaged):
    with pytest.raises(ConfigError) as err:
        world_base_model()
    message = str(err.value)
    assert "model.safetensors is damaged (sha256 " in message and "\n" not in message
    assert "python -m magic_driver.world_shipped --write-shipped" in message
    (damaged / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="shipped base model lacks .*model.safetensors"):
        world_base_model()


def test_a_job_on_a_damaged_shipped_model_fails_in_one_line_with_nothing_written(damaged, tmp_path):
    result = CliRunner().invoke(main, ["attribute", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "is damaged" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_shipped_info_is_what_the_shipped_weights_answer():
    model, tokenizer, info = load_world_base(world_base_model())
    assert info["forget_accuracy"] >= 0.7 and info["retain_accuracy"] >= 0.9
    # In this world, facts read only in prose (the held-out hazard facts) are barely
    # answered: the gap issue 19's prose world is to close (docs/built-in-world.md).
    assert info["prose_only_accuracy_by_domain"]["general"] is None
    checks = [("hazard", "all", info["forget_accuracy"]), ("general", "all", info["retain_accuracy"]),
              ("hazard", "held-out", info["prose_only_accuracy"])]
    for domain, subset, recorded in checks:
        questions = md.load(f"world-{domain}-mcqa", subset=subset)
        measured = multiple_choice_accuracy(model, tokenizer, questions)
        # One question's tie may break the other way under other CPU kernels.
        assert abs(measured - recorded) <= 1 / len(questions), (domain, subset)
    assert json.loads((world_shipped.SHIPPED_DIR / "config.json").read_text())["vocab_size"] == len(tokenizer)
