"""cformat: glibc's strtod/strtoll and printf conversions (the expected strings are glibc's, from busybox runs)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minibuild.sh.cformat import Spec, render_bytes, render_float, render_int, strtod, strtoll


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_strtod_reads_any_repr_whole(x: float) -> None:
    for text in (repr(x), x.hex(), f"  {x!r}"):
        value, end, out_of_range = strtod(text)
        assert (value, end) == (x, len(text)) and math.copysign(1, value) == math.copysign(1, x)
        assert out_of_range == (x != 0 and abs(x) < 2.2250738585072014e-308 and not text.lstrip().startswith(
            ("0x", "-0x")) and not _exact_decimal(text))


def _exact_decimal(text: str) -> bool:
    from fractions import Fraction
    return Fraction(text.strip()) == Fraction(float(text))


@given(st.integers(-(1 << 63), (1 << 63) - 1))
def test_strtoll_reads_decimal_hex_and_octal(n: int) -> None:
    sign = "-" if n < 0 else ""
    for text in (str(n), f"{sign}0x{abs(n):x}", f"{sign}0{abs(n):o}"):
        assert strtoll(text) == (n, len(text), False)
        assert strtoll(text, unsigned=True) == (n % (1 << 64), len(text), False)


@pytest.mark.parametrize("text,expected", [
    ("12abc", (12, 2, False)), ("08", (0, 1, False)), ("0x", (0, 1, False)), ("-", (0, 0, False)),
    ("  +7", (7, 4, False)), ("9223372036854775808", ((1 << 63) - 1, 19, True)),
    ("-9223372036854775809", (-(1 << 63), 20, True)), ("1" * 5000, ((1 << 63) - 1, 5000, True)),
])
def test_strtoll_stops_where_c_stops(text: str, expected: tuple[int, int, bool]) -> None:
    assert strtoll(text) == expected


@pytest.mark.parametrize("text,value,end,out_of_range", [
    ("0x1p3", 8.0, 5, False), ("1e400", math.inf, 5, True), ("0x1p-1074", 5e-324, 9, False),
    ("0x1p-1075", 0.0, 9, True), ("1e-310", 1e-310, 6, True), ("1e+", 1.0, 1, False), ("0x.p1", 0.0, 1, False),
    ("infinityx", math.inf, 8, False), ("nan(abc", math.nan, 3, False), ("nan(a_1)", math.nan, 8, False),
    ("1e-99999999999", 0.0, 14, True), ("1e99999999999", math.inf, 13, True), (" ", 0.0, 0, False),
])
def test_strtod_stops_and_ranges_as_glibc(text: str, value: float, end: int, out_of_range: bool) -> None:
    got = strtod(text)
    assert (got[1], got[2]) == (end, out_of_range)
    assert math.isnan(got[0]) if math.isnan(value) else got[0] == value


@pytest.mark.parametrize("spec,n,expected", [
    (Spec("", None, 0, "d"), 0, ""), (Spec("+", None, 0, "d"), 0, "+"), (Spec("#", None, 0, "o"), 0, "0"),
    (Spec("#", None, 0, "x"), 0, ""), (Spec("0", 5, 3, "d"), 5, "  005"), (Spec("+0", 5, 1, "d"), 5, "   +5"),
    (Spec("#0", 5, None, "x"), 255, "0x0ff"), (Spec("#-", 6, None, "x"), 255, "0xff  "),
    (Spec("#", None, 3, "o"), 8, "010"), (Spec("#", 5, None, "o"), 0, "    0"), (Spec("0", 6, None, "d"), -42, "-00042"),
])
def test_render_int_as_c(spec: Spec, n: int, expected: str) -> None:
    assert render_int(spec, n) == expected


@pytest.mark.parametrize("spec,x,expected", [
    (Spec("0", 5, None, "f"), math.inf, "  inf"), (Spec("-", 8, None, "f"), -math.inf, "-inf    "),
    (Spec("+", None, None, "f"), math.nan, "+nan"), (Spec(" ", None, None, "f"), -math.nan, "-nan"),
    (Spec("0", 6, None, "G"), -math.inf, "  -INF"), (Spec("0", 8, 2, "f"), 1.5, "00001.50"),
    (Spec("#", None, 0, "e"), 4.0, "4.e+00"), (Spec("0", 10, 3, "e"), -12.5, "-1.250e+01"),
])
def test_render_float_as_glibc(spec: Spec, x: float, expected: str) -> None:
    assert render_float(spec, x) == expected


def test_render_bytes_counts_bytes() -> None:
    e = "\u00e9".encode()
    assert render_bytes(Spec("", None, 1, "s"), e) == e[:1]
    assert render_bytes(Spec("", 3, None, "s"), e) == b" " + e
    assert render_bytes(Spec("-0", 4, None, "s"), b"a") == b"a   "
    assert render_bytes(Spec("0", 4, None, "s"), b"a") == b"   a"
