"""Physical units: parsing unit strings and dimensional analysis.

Every quantity is stored in one consistent unit system, the one most spiking
models are written in::

    time ms, voltage mV, current nA  =>  conductance uS, capacitance nF,
    resistance MOhm, charge pC, frequency 1/ms (kHz)

A dimension is a triple of exponents over (time, voltage, current). ``20 ms``
becomes ``20.0`` with dimension ``(1, 0, 0)``; ``0.02 s`` becomes ``20.0`` too.
"""

from __future__ import annotations

import re
from fractions import Fraction

Dim = tuple[Fraction, Fraction, Fraction]

DIMENSIONLESS: Dim = (Fraction(0), Fraction(0), Fraction(0))
TIME: Dim = (Fraction(1), Fraction(0), Fraction(0))

_PREFIX = {"": Fraction(1), "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9),
           "m": Fraction(1, 10**3), "u": Fraction(1, 10**6), "\u00b5": Fraction(1, 10**6),
           "\u03bc": Fraction(1, 10**6), "n": Fraction(1, 10**9), "p": Fraction(1, 10**12),
           "f": Fraction(1, 10**15)}

# base unit -> (size in SI, dimension); canonical sizes below convert SI to ms/mV/nA
_BASE = {
    "s": (1.0, (1, 0, 0)),
    "V": (1.0, (0, 1, 0)),
    "A": (1.0, (0, 0, 1)),
    "S": (1.0, (-0, -1, 1)),
    "F": (1.0, (1, -1, 1)),
    "Ohm": (1.0, (0, 1, -1)),
    "\u03a9": (1.0, (0, 1, -1)),
    "C": (1.0, (1, 0, 1)),
    "Hz": (1.0, (-1, 0, 0)),
}
_CANONICAL_SI = (Fraction(1, 10**3), Fraction(1, 10**3), Fraction(1, 10**9))  # one ms, one mV, one nA in SI
_NAMED_DIMENSIONLESS = {"1", "percent"}

MAX_UNIT_POWER = 12  # largest exponent written in a unit, e.g. ms^-2

_FACTOR = re.compile(r"([^\^*/]+)(?:\^(-?[0-9]+))?")


class UnitError(ValueError):
    pass


def _lookup(symbol: str) -> tuple[float, Dim]:
    # exact base names first (so 'm' is not milli-nothing), then prefix + base
    for prefix in sorted(_PREFIX, key=len, reverse=True):
        if symbol.startswith(prefix) and symbol[len(prefix):] in _BASE:
            _, dim = _BASE[symbol[len(prefix):]]
            return _PREFIX[prefix], tuple(Fraction(d) for d in dim)
    raise UnitError(symbol)


def parse_unit(text: str) -> tuple[Fraction, Dim]:
    """``'nS/mV'`` -> (factor to canonical units, dimension).

    Raises :class:`UnitError` naming the first unknown unit symbol.
    """
    scale_si, dim = Fraction(1), [Fraction(0)] * 3
    sign = 1
    pos = 0
    for i, part in enumerate(re.split(r"([*/])", text)):
        if i % 2 == 1:
            sign = -1 if part == "/" else 1
            continue
        m = _FACTOR.fullmatch(part)
        if not m:
            raise UnitError(part)
        power = sign * int(m.group(2) or 1)
        if abs(power) > MAX_UNIT_POWER:  # (also keeps 1 mV^1000000000 from taking forever)
            raise UnitError(part)
        size, d = _lookup(m.group(1))
        scale_si *= Fraction(size) ** power
        dim = [a + power * b for a, b in zip(dim, d)]
        pos += len(part)
    canonical = Fraction(1)
    for exp, unit in zip(dim, _CANONICAL_SI):
        if exp.denominator != 1:
            raise UnitError(text)
        canonical *= unit ** int(exp)
    return scale_si / canonical, tuple(dim)


def mul(a: Dim, b: Dim) -> Dim:
    return tuple(x + y for x, y in zip(a, b))


def div(a: Dim, b: Dim) -> Dim:
    return tuple(x - y for x, y in zip(a, b))


def power(a: Dim, n) -> Dim:
    return tuple(x * Fraction(n) for x in a)


_NAMES = {(1, 0, 0): "ms", (0, 1, 0): "mV", (0, 0, 1): "nA", (0, -1, 1): "uS",
          (1, -1, 1): "nF", (0, 1, -1): "MOhm", (1, 0, 1): "pC", (-1, 0, 0): "1/ms",
          (-1, 1, 0): "mV/ms", (-1, 0, 1): "nA/ms", (0, 0, 0): "1"}


def format_dim(d: Dim | None) -> str:
    """A readable canonical unit for a dimension, e.g. ``mV/ms``."""
    if d is None:
        return "any"
    key = tuple(int(x) if x.denominator == 1 else x for x in d)
    if key in _NAMES:
        return _NAMES[key]
    parts = []
    for exp, sym in zip(d, ("ms", "mV", "nA")):
        if exp == 1:
            parts.append(sym)
        elif exp != 0:
            parts.append(f"{sym}^{exp}")
    return "*".join(parts) or "1"
