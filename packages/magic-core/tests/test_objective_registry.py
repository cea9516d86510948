"""The objective registry: built-ins through the entry point, plugins set aside when broken."""

import importlib.metadata as im
import json
import subprocess
import sys

import pytest
from magic_core import ConfigError, ObjectiveSpec
from magic_core.objective_registry import ENTRY_POINT_GROUP, ObjectiveRegistry


def _spec(name="toy", **kwargs):
    return ObjectiveSpec(name, lambda given: None, **{"reads": ("lm",), **kwargs})


def test_the_builtins_come_from_magic_cores_entry_point():
    registry = ObjectiveRegistry()
    assert registry.names() == ["contrast", "lm", "multiple-choice"]
    assert registry.names(composite=False) == ["lm", "multiple-choice"]
    assert {s.package for s in registry.list()} == {"magic-core"}
    assert registry.get("contrast").parts == ("positive", "negative")


def test_names_are_listed_without_importing_torch():
    code = ("import json, sys; from magic_core.objective_registry import list_objectives; "
            "names = [s.name for s in list_objectives()]; "
            "print(json.dumps([names, [m for m in ('torch', 'transformers', 'datasets') "
            "if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout) == [["contrast", "lm", "multiple-choice"], []], out.stderr


def test_an_unknown_name_gets_the_known_ones_and_a_suggestion():
    registry = ObjectiveRegistry()
    assert registry.problem("lm") is None
    assert registry.problem("multiple_choice") == (
        "expected one of 'contrast', 'lm', 'multiple-choice', got 'multiple_choice' "
        "(did you mean 'multiple-choice'?)")
    assert registry.problem("contrast", composite=False).startswith(
        "expected one of 'lm', 'multiple-choice', got 'contrast'")
    with pytest.raises(ConfigError, match="^objective: expected one of"):
        registry.get("rouge")


def test_two_packages_offering_one_name_are_both_named():
    registry = ObjectiveRegistry(load_entry_points=False)
    registry.register(_spec(), "pkg-one")
    registry.register(_spec(), "pkg-two")
    with pytest.raises(ConfigError, match="'toy' is registered by two packages, 'pkg-one' and "
                                          "'pkg-two'; uninstall one of them"):
        registry.get("toy")


def test_broken_plugins_are_set_aside_and_named(monkeypatch):
    eps = [im.EntryPoint("builtin", "magic_core.builtin_objectives:OBJECTIVES", ENTRY_POINT_GROUP),
           im.EntryPoint("gone", "no_such_objectives_for_magic:X", ENTRY_POINT_GROUP),
           im.EntryPoint("odd", "magic_core.objective_registry:ENTRY_POINT_GROUP",  # a str
                         ENTRY_POINT_GROUP)]
    monkeypatch.setattr(im, "entry_points", lambda group: eps if group == ENTRY_POINT_GROUP else [])
    with pytest.warns(UserWarning) as caught:
        registry = ObjectiveRegistry()
    # entry points without a distribution are named by their value
    gone, odd = eps[1].value, eps[2].value
    assert sorted(registry.broken) == sorted([gone, odd])
    assert [str(w.message).split(" (")[0] for w in caught] == [
        f"objective plugin 'gone' from package '{gone}' failed to import",
        f"objective plugin 'odd' from package '{odd}' is not usable"]
    assert registry.names() == ["contrast", "lm", "multiple-choice"]
    assert registry.problem("rouge").endswith(
        f"; objective plugins that failed to import: {', '.join(sorted([gone, odd]))}")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reads": ()}, "give exactly one of reads"),
    ({"parts": ("a", "b")}, "give exactly one of reads"),
    ({"column_options": ("col",)}, "column option 'col' is not one of its options"),
])
def test_a_spec_that_cannot_work_is_refused_when_declared(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _spec(**kwargs)
