import datasets
import magic_datasets as md
import pytest
from magic_datasets import DatasetError, DatasetSpec, Kind, Registry, hookimpl


class _Plugin:
    def __init__(self, *specs):
        self.specs = list(specs)

    @hookimpl
    def magic_datasets_register(self):
        return self.specs


def _toy(name="toy", kind=Kind.TRAINING_CORPUS, rows=None):
    rows = rows or [{"id": "a", "text": "hello"}]
    return DatasetSpec(name, kind, lambda n=1: datasets.Dataset.from_list(rows[:n]),
                       options={"n": 1})


def test_builtin_world_is_discovered_through_its_entry_point():
    names = {s.name for s in md.list_datasets()}
    assert {"world-attribution", "world-hazard-mcqa", "world-general-mcqa",
            "world-pretrain"} <= names
    assert md.get("world-attribution").package == "magic-datasets"


def test_load_checks_options_and_suggests_close_names():
    with pytest.raises(DatasetError, match="did you mean 'world-attribution'"):
        md.load("world-atribution")
    with pytest.raises(DatasetError, match="no option 'ndocs'.*did you mean 'n_docs'"):
        md.load("world-attribution", ndocs=3)


def test_two_plugins_with_one_name_are_both_named():
    reg = Registry(load_entry_points=False)
    reg.register(_Plugin(_toy()), name="one", package="pkg-one")
    reg.register(_Plugin(_toy()), name="two", package="pkg-two")
    with pytest.raises(DatasetError) as err:
        reg.get("toy")
    assert "pkg-one" in str(err.value) and "pkg-two" in str(err.value)


def test_a_dataset_missing_a_required_column_is_refused():
    reg = Registry(load_entry_points=False)
    reg.register(_Plugin(_toy("bad", Kind.MULTIPLE_CHOICE)), package="pkg")
    with pytest.raises(DatasetError, match="lacks column 'question'"):
        reg.load("bad")


def test_a_broken_plugin_is_reported_and_the_others_still_load(monkeypatch):
    import importlib.metadata as im

    good = im.EntryPoint("world", "magic_datasets.world.plugin", "magic.datasets")
    bad = im.EntryPoint("broken", "no_such_module_for_magic", "magic.datasets")
    monkeypatch.setattr(im, "entry_points", lambda group: [good, bad])
    with pytest.warns(UserWarning, match="failed to import"):
        reg = Registry()
    assert "world-attribution" in {s.name for s in reg.list()}
    assert list(reg.broken) == ["no_such_module_for_magic"]
