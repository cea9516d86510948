"""Recipe plugins load through the shared entry-point helper: a broken one is set aside."""

import importlib.metadata as im

import pytest
from magic_unlearn.registry import RecipeRegistry


def test_a_broken_recipe_plugin_is_reported_and_the_builtins_still_load(monkeypatch):
    good = im.EntryPoint("builtin", "magic_unlearn.recipes", "magic.recipes")
    bad = im.EntryPoint("broken", "no_such_recipes_for_magic", "magic.recipes")
    monkeypatch.setattr(im, "entry_points", lambda group: [good, bad])
    with pytest.warns(UserWarning, match="recipe plugin 'broken' .* its recipes are unavailable"):
        registry = RecipeRegistry()
    assert list(registry.broken) == ["no_such_recipes_for_magic"]
    assert "gradient-ascent" in registry.recipes()
