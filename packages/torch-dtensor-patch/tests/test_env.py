"""TORCH_DTENSOR_PATCH and TORCH_DTENSOR_PATCH_FROM_LOCAL: every accepted word, in-process."""

import warnings

import pytest

from torch_dtensor_patch import _env

ON = ["1", "true", "yes", "on", "y", "enable", "enabled", "TRUE", " Yes ", "On\n", "Y"]
OFF = ["0", "false", "no", "off", "n", "none", "disable", "disabled", "", "  ", "FALSE",
       " No", "NONE", "Disable", "DISABLED\t", "N"]
UNKNOWN = ["2", "maybe", "nope", "of", "-1", "y e s"]


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(_env, "_warned", set())
    for name in (_env.PATCH, _env.PATCH_FROM_LOCAL):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _read(reader):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = reader()
    return value, [w for w in caught if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("name, reader", [
    (_env.PATCH, _env.enabled), (_env.PATCH_FROM_LOCAL, _env.from_local_enabled)])
@pytest.mark.parametrize("value, expected", [(v, True) for v in ON] + [(v, False) for v in OFF])
def test_known_words(fresh, name, reader, value, expected):
    fresh.setenv(name, value)
    assert _read(reader) == (expected, [])


@pytest.mark.parametrize("reader", [_env.enabled, _env.from_local_enabled])
def test_unset_means_on(fresh, reader):
    assert _read(reader) == (True, [])


@pytest.mark.parametrize("value", UNKNOWN)
def test_unknown_value_keeps_the_default_and_warns_once(fresh, value):
    fresh.setenv(_env.PATCH, value)
    first, warned = _read(_env.enabled)
    again, warned_again = _read(_env.enabled)
    assert first is True and again is True
    assert len(warned) == 1 and warned_again == []
    message = str(warned[0].message)
    assert f"TORCH_DTENSOR_PATCH={value!r}" in message
    assert "stays on" in message
    assert all(word in message for word in _env.TRUE_WORDS + _env.FALSE_WORDS if word)


def test_each_variable_warns_for_itself(fresh):
    fresh.setenv(_env.PATCH, "maybe")
    fresh.setenv(_env.PATCH_FROM_LOCAL, "maybe")
    _, first = _read(_env.enabled)
    _, second = _read(_env.from_local_enabled)
    assert len(first) == 1 and len(second) == 1
    assert _env.PATCH_FROM_LOCAL in str(second[0].message)
