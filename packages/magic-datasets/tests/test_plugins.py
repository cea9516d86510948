"""The one entry-point loop every registry shares: loads what imports, names what does not."""

import importlib.metadata as im
import warnings

import magic_datasets as md
import pytest
from magic_datasets.plugins import load_entry_points


def test_loaded_and_broken_entry_points_are_told_apart(monkeypatch):
    good = im.EntryPoint("world", "magic_datasets.world.plugin", "magic.things")
    bad = im.EntryPoint("broken", "no_such_module_for_magic", "magic.things")
    asked = []
    monkeypatch.setattr(im, "entry_points", lambda group: asked.append(group) or [good, bad])
    with pytest.warns(UserWarning) as caught:
        loaded, broken = load_entry_points("magic.things", "thing")
    assert asked == ["magic.things"]
    [(name, package, module)] = loaded
    assert (name, package) == ("world", "magic_datasets.world.plugin")
    assert module.__name__ == "magic_datasets.world.plugin"
    assert broken == {"no_such_module_for_magic":
                      "ModuleNotFoundError: No module named 'no_such_module_for_magic'"}
    [warning] = caught
    assert str(warning.message) == (
        "thing plugin 'broken' from package 'no_such_module_for_magic' failed to import "
        "(ModuleNotFoundError: No module named 'no_such_module_for_magic'); "
        "its things are unavailable")


def test_a_group_without_plugins_loads_nothing_and_warns_nothing(monkeypatch):
    monkeypatch.setattr(im, "entry_points", lambda group: [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_entry_points("magic.things", "thing") == ([], {})


def test_the_helper_is_public_api_of_magic_datasets():
    assert md.load_entry_points is load_entry_points
