"""Settings print so that distinct values never print alike."""

import random

import pytest
from magic_core.number_format import exact, fixed


@pytest.mark.parametrize("value, text", [
    (5e-4, "0.0005"), (8e-4, "0.0008"), (1e-5, "1e-5"), (1.5e-5, "1.5e-5"), (10.0, "10"),
    (0.0, "0"), (3e-7, "3e-7"), (0.1 + 0.2, "0.30000000000000004"), (4, "4"), ("adam", "adam"),
])
def test_exact_is_short_and_readable(value, text):
    assert exact(value) == text


def test_exact_reads_back_as_the_same_float():
    rng = random.Random(0)
    for _ in range(2000):
        value = rng.uniform(-1, 1) * 10 ** rng.randint(-12, 12)
        assert float(exact(value)) == value


def test_fixed_is_for_measurements():
    assert fixed(0.78125) == "0.781" and fixed(None) == "-"
