"""Shipped presets: each one is a complete, valid job of its kind, usable as preset:NAME."""

import pytest
import yaml
from click.testing import CliRunner
from magic_core import ConfigError
from magic_core.typed_config import to_mapping
from magic_driver.cli import main
from magic_driver.job_kinds import build_any_job, job_kind
from magic_driver.jobs import AttributeJob, read_mapping
from magic_driver.presets import get_preset, list_presets
from magic_driver.unlearn_jobs import UnlearnJob

# The seed's eight sbatch files, one preset each.
EXPECTED = {
    "attr-wikitext": ("attribute", "wikitext-103"),
    "attr-forget": ("attribute", "wmdp-bio-forget"),
    "attr-retain": ("attribute", "wmdp-bio-retain"),
    "attr-lie-o": ("attribute", "wmdp-lie-o-deep-fried"),
    "attr-ultrachat": ("attribute", "ultrachat-200k"),
    "unlearn-bs4-adam": ("unlearn", "seed-bs4-adam"),
    "unlearn-bs16-adam": ("unlearn", "seed-bs16-adam"),
    "unlearn-bs16-adamw": ("unlearn", "seed-bs16-adamw"),
}


def test_the_seed_jobs_are_all_shipped():
    assert {p.name for p in list_presets()} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_is_a_valid_typed_job_without_unknown_keys(name):
    preset = get_preset(name)
    data = read_mapping(f"preset:{name}")
    assert data == yaml.safe_load(preset.text)
    job = build_any_job(data)  # from_mapping refuses unknown keys and wrong types
    kind, what = EXPECTED[name]
    assert job.kind == kind == preset.kind == job_kind(data)
    assert isinstance(job, AttributeJob if kind == "attribute" else UnlearnJob)
    assert job.model.path == "EleutherAI/deep-ignorance-unfiltered"
    if kind == "attribute":
        assert job.data.dataset == what
        assert job.query.dataset == "wmdp-bio-robust" and job.query.prompt_style == "seed"
        assert (job.train.optimizer, job.train.lr, job.train.batch_size, job.train.seed) == \
            ("sgd", 1e-4, 4, 42)
        assert job.train.precision == "fp32"
        assert job.slurm.tasks_per_node == job.slurm.gpus_per_node == 4
        # The seed's ranks sharded the model (simple FSDP), as the presets' comments say.
        assert job.attribution.sharding == "fsdp" and "sharded (fsdp)" in preset.text
    else:
        assert job.optim.preset == what
        assert job.scores.forget == "runs/attr-forget"
        # The unlearned documents are the ones attr-forget scored.
        assert to_mapping(job.forget) == to_mapping(build_any_job(read_mapping("preset:attr-forget")).data)
        assert job.slurm.tasks == 1
    assert job.output.dir == f"runs/{name}"
    assert preset.description  # the first comment line
    # The frozen form `magic submit` writes reads back to the same job.
    assert build_any_job(yaml.safe_load(yaml.safe_dump(to_mapping(job)))) == job


def test_presets_cli_lists_and_shows():
    runner = CliRunner()
    listed = runner.invoke(main, ["presets", "list"])
    assert listed.exit_code == 0 and all(name in listed.output for name in EXPECTED)
    shown = runner.invoke(main, ["presets", "show", "attr-forget"])
    assert shown.exit_code == 0 and shown.output == get_preset("attr-forget").text


def test_unknown_preset_and_a_bare_preset_name_get_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["attribute", "preset:attr-wikitxt"])
    assert result.exit_code == 2
    assert result.output == "error: unknown preset 'attr-wikitxt'; did you mean 'attr-wikitext'?\n"
    result = runner.invoke(main, ["submit", "attr-wikitext", "--dry-run"])
    assert result.exit_code == 2 and "write preset:attr-wikitext" in result.output
    assert result.output.count("\n") == 1


def test_kind_mismatch_and_bad_slurm_values_are_refused_with_the_key_path():
    result = CliRunner().invoke(main, ["attribute", "preset:unlearn-bs4-adam"])
    assert result.exit_code == 2
    assert result.output == ("error: kind: this is an unlearn job; run it with `magic unlearn` "
                             "(or `magic submit`)\n")
    cases = {"slurm.gpu_per_node=4": "slurm.gpu_per_node: unknown key; did you mean 'gpus_per_node'?",
             "slurm.nodes=two": "slurm.nodes: expected an integer",
             "slurm.time=5h": "slurm.time: '5h' is not a Slurm time",
             "slurm.mem=lots": "slurm.mem: 'lots' is not a Slurm memory size",
             "slurm.checkpoint_before_end=99999": "slurm.checkpoint_before_end must be between"}
    for override, message in cases.items():
        with pytest.raises(ConfigError) as err:
            build_any_job(read_mapping("preset:attr-wikitext"), (override,))
        assert message in str(err.value), (override, str(err.value))
