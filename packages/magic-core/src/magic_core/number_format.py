"""Numbers in tables and reports: settings printed exactly, measurements to a fixed precision.

A setting (a learning rate, a KL weight) is printed with the fewest
digits that read back as the same float, so two runs that differ
in it never share a row label: 5e-4 and 8e-4 print as 0.0005 and 0.0008,
1e-5 and 1.5e-5 as 1e-5 and 1.5e-5.
"""

from __future__ import annotations

import math


def exact(value) -> str:
    """``value`` in the shortest form that reads back as the same float; others as ``str``."""
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    text = repr(value)  # shortest round-trip digits; plain from 1e-4 up to 1e16
    mantissa, e, exponent = text.partition("e")
    if mantissa.endswith(".0"):
        mantissa = mantissa[:-2]
    # Python pads exponents to two digits (1e-05); a person writes 1e-5.
    return f"{mantissa}e{int(exponent)}" if e else mantissa


def fixed(value, decimals: int = 3) -> str:
    """A measurement (an accuracy) with ``decimals`` decimals; None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{decimals}f}"


def significant(value, digits: int = 4) -> str:
    """A measurement without a natural scale (a loss, a score) to ``digits`` significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}g}"
