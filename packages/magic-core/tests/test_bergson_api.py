"""magic-core uses bergson only through `bergson_api`, and fails loudly if bergson moves."""

import re
from pathlib import Path

import pytest
from magic_core import bergson_api
from packaging.specifiers import SpecifierSet

SOURCE = Path(bergson_api.__file__).parent
PYPROJECT = SOURCE.parents[1] / "pyproject.toml"


def test_the_installed_bergson_has_everything_magic_core_uses():
    problems = bergson_api.surface_problems()
    assert not problems, (
        f"bergson {bergson_api.installed_version()} moved what magic-core uses (tested with "
        f"bergson{bergson_api.TESTED_RANGE}): " + "; ".join(problems))


def test_the_tested_range_is_the_pinned_dependency_and_holds_the_installed_version():
    pins = re.findall(r'"bergson([^"]*)"', PYPROJECT.read_text())
    assert pins == [bergson_api.TESTED_RANGE]
    installed = bergson_api.installed_version()
    assert installed in SpecifierSet(bergson_api.TESTED_RANGE), (
        f"bergson {installed} is outside the tested range bergson{bergson_api.TESTED_RANGE}")


@pytest.mark.parametrize("moved", [
    bergson_api.Name("bergson.magic", fields=("params", "opt_state", "state_buffers")),
    bergson_api.Name("bergson.magic", members=("activate", "swap_in")),
    bergson_api.Name("bergson.magic.nowhere"),
], ids=["field", "member", "module"])
def test_a_moved_name_fails_naming_the_version_and_the_tested_range(moved, monkeypatch):
    monkeypatch.setitem(bergson_api.SURFACE, "TrainerState", moved)
    with pytest.raises(ImportError) as raised:
        bergson_api.check_surface()
    message = str(raised.value)
    assert f"bergson {bergson_api.installed_version()}" in message
    assert f"bergson{bergson_api.TESTED_RANGE}" in message
    assert "TrainerState" in message


def test_a_changed_signature_is_reported():
    def weighted_causal_lm_ce(logits, targets, *, example_weight=None):
        pass

    spec = bergson_api.SURFACE["weighted_causal_lm_ce"]
    problems = bergson_api._problems_of("weighted_causal_lm_ce", spec, weighted_causal_lm_ce)
    assert len(problems) == 1 and "takes ('logits', 'targets', 'example_weight')" in problems[0]


def test_no_other_module_imports_bergson():
    importers = sorted(p.name for p in SOURCE.glob("*.py")
                       if re.search(r"^\s*(from|import) bergson", p.read_text(), re.MULTILINE))
    assert importers == []  # bergson_api imports by name (importlib), lazily
    assert all(name in bergson_api.SURFACE for name in ("TrainerState", "simple_fsdp",
                                                        "weighted_causal_lm_ce"))


def test_names_load_lazily_and_are_the_real_ones():
    from bergson.magic import TrainerState

    assert bergson_api.TrainerState is TrainerState
    with pytest.raises(AttributeError):
        bergson_api.Trainer  # noqa: B018  (not part of what magic-core uses)
