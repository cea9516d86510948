"""status/apply/unpatch in this process; no ranks needed."""

import torch

from torch_dtensor_patch import COMPONENTS, _components


def _backwards():
    found, _absent = _components.locate()
    return {name: found[name].owner.__dict__["backward"] for name in COMPONENTS}


def test_status_names_every_component(pristine):
    states = pristine.status()
    assert set(states) == set(COMPONENTS)
    assert {s.state for s in states.values()} <= {"upstream", "missing"}


def test_apply_patches_exactly_what_is_missing(pristine):
    before = pristine.status()
    originals = _backwards()
    after = pristine.apply()
    installed = _backwards()
    for name in COMPONENTS:
        if before[name].state == "upstream":
            assert installed[name] is originals[name], name  # upstream: untouched
            assert after[name].state == "upstream"
        else:
            assert installed[name] is not originals[name], name
            assert after[name].state == "patched"


def test_apply_is_idempotent_and_unpatch_restores_identity(pristine):
    originals = _backwards()
    pristine.apply()
    first = _backwards()
    pristine.apply()
    assert _backwards() == first and all(_backwards()[k] is first[k] for k in first)
    pristine.unpatch()
    restored = _backwards()
    assert all(restored[k] is originals[k] for k in originals)
    assert "patched" not in {s.state for s in pristine.status().values()}


def test_from_local_has_its_own_switch(pristine):
    before = pristine.status()
    after = pristine.apply(from_local=False)
    assert after["from_local"].state == before["from_local"].state


def test_detection_ignores_version_strings(pristine, monkeypatch):
    expected = pristine.status()
    for fake in ("2.0.0", "9.9.9", "garbage"):
        monkeypatch.setattr(torch, "__version__", fake)
        assert pristine.status() == expected


def test_stock_status_looks_through_the_patch(pristine):
    stock = pristine.status()
    pristine.apply()
    assert pristine.status(stock=True) == stock
