"""`magic recipes show` prints option defaults as YAML, as a job file would hold them."""

import magic_unlearn as mu
import pytest
import yaml
from click.testing import CliRunner
from magic_driver.cli import main
from magic_driver.recipe_info import options_yaml


@pytest.mark.parametrize("name", ["attribution-weighted", "gradient-ascent", "gradient-difference",
                                  "npo", "npo-attribution", "rmu", "rmu-attribution"])
def test_options_block_is_the_recipes_defaults_in_yaml(name):
    result = CliRunner().invoke(main, ["recipes", "show", name])
    assert result.exit_code == 0, result.output
    options = mu.get_recipe(name).options
    block = result.output.split("options:", 1)[1].split("\nuse:", 1)[0]
    if not options:
        assert block.strip() == "none"
        return
    assert "None" not in block and "'" not in block  # Python's repr, not YAML
    assert yaml.safe_load(block) == dict(options)


def test_values_use_yaml_spelling():
    text = options_yaml({"top_fraction": None, "enabled": True, "lr": 1e-4, "eps": 1e-8,
                         "mode": "mean-abs", "word": "null", "sizes": [1, 2]})
    assert text.splitlines()[:5] == ["top_fraction: null", "enabled: true", "lr: 0.0001",
                                     "eps: 1.0e-08", "mode: mean-abs"]
    assert "word: 'null'" in text  # a string that reads as null stays a string
    assert yaml.safe_load(text)["sizes"] == [1, 2]
