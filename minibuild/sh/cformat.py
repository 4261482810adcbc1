"""C's printf conversions and strtoll/strtod, as glibc does them: the one renderer printf and awk share."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

DBL_MIN = 2.2250738585072014e-308
INT64 = (-(1 << 63), (1 << 63) - 1)
UINT64_MAX = (1 << 64) - 1
C_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class Spec:
    """One conversion: flags from ``-+ #0``, width and precision (None: not given), the conversion letter."""

    flags: str
    width: int | None
    prec: int | None
    conv: str


def _pad(spec: Spec, head: str, body: str, zeros: bool) -> str:
    """head (sign, 0x) and body padded to the width: left with '-', zeros after head when allowed, else spaces."""
    fill = (spec.width or 0) - len(head + body)
    if fill <= 0:
        return head + body
    if "-" in spec.flags:
        return head + body + " " * fill
    if zeros and "0" in spec.flags:
        return head + "0" * fill + body
    return " " * fill + head + body


def render_int(spec: Spec, n: int) -> str:
    """%d %i %u %o %x %X of n (already reduced to the conversion's range by the caller)."""
    conv = spec.conv
    base = {"o": 8, "x": 16, "X": 16}.get(conv, 10)
    digits = "" if n == 0 and spec.prec == 0 else _digits(abs(n), base, conv == "X")
    if spec.prec is not None:
        digits = digits.rjust(spec.prec, "0")
    head = ""
    if conv in "di":
        head = "-" if n < 0 else "+" if "+" in spec.flags else " " if " " in spec.flags else ""
    elif "#" in spec.flags:
        if conv == "o" and not digits.startswith("0"):
            digits = "0" + digits
        elif conv in "xX" and n != 0:
            head = "0" + conv
    return _pad(spec, head, digits, zeros=spec.prec is None)


def _digits(n: int, base: int, upper: bool) -> str:
    return format(n, {8: "o", 10: "d", 16: "X" if upper else "x"}[base])


def render_float(spec: Spec, x: float) -> str:
    """%f %e %E %g %G of x; inf and nan as glibc writes them (a sign, never zero-padded)."""
    if math.isfinite(x):
        text = ("%" + spec.flags + (f".{spec.prec}" if spec.prec is not None else "") + spec.conv) % x
        head, body = (text[0], text[1:]) if text[:1] in "+- " else ("", text)
        return _pad(spec, head, body, zeros=True)
    neg = math.copysign(1.0, x) < 0
    head = "-" if neg else "+" if "+" in spec.flags else " " if " " in spec.flags else ""
    body = "inf" if math.isinf(x) else "nan"
    return _pad(spec, head, body.upper() if spec.conv in "EFG" else body, zeros=False)


def render_bytes(spec: Spec, data: bytes) -> bytes:
    """%s (or %c) of data: precision and width count bytes, as C's do; the 0 flag pads with spaces."""
    if spec.prec is not None:
        data = data[:spec.prec]
    fill = b" " * max(0, (spec.width or 0) - len(data))
    return data + fill if "-" in spec.flags else fill + data


_INT_RE = re.compile(r"[ \t\n\v\f\r]*([-+]?)(0[xX](?=[0-9a-fA-F])|0?)([0-9a-fA-F]*)")


def strtoll(text: str, unsigned: bool = False) -> tuple[int, int, bool]:
    """C's strtoll (strtoull) with base 0: the value, how many characters it read (0: none), whether it overflowed.

    Like C, strtoull takes a sign too and negates modulo 2**64."""
    m = _INT_RE.match(text)
    assert m is not None  # every part of the pattern may be empty
    sign, prefix, rest = m.groups()
    base = 16 if len(prefix) == 2 else 8 if prefix == "0" else 10
    valid = {16: "0123456789abcdefABCDEF", 8: "01234567", 10: "0123456789"}[base]
    k = 0
    while k < len(rest) and rest[k] in valid:
        k += 1
    digits = rest[:k]
    if not digits and not prefix:
        return 0, 0, False
    end = m.start(3) + k
    digits = digits.lstrip("0")
    value = UINT64_MAX + 1 if len(digits) > 24 else int(digits or "0", base)  # a longer one overflows anyway
    if unsigned:
        over = value > UINT64_MAX
        value = UINT64_MAX if over else (-value) & UINT64_MAX if sign == "-" else value
        return value, end, over
    value = -value if sign == "-" else value
    if not INT64[0] <= value <= INT64[1]:
        return (INT64[0] if value < 0 else INT64[1]), end, True
    return value, end, False


_DEC_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_HEX_RE = re.compile(r"0[xX](?:([0-9a-fA-F]+)\.?([0-9a-fA-F]*)|\.([0-9a-fA-F]+))(?:[pP]([-+]?\d+))?")
_SPECIAL_RE = re.compile(r"(infinity|inf|nan(?:\([0-9A-Za-z_]*\))?)", re.IGNORECASE)


def strtod(text: str) -> tuple[float, int, bool]:
    """C's strtod: the value, how many characters it read (0: none), whether it was out of range
    (overflow to inf, or an inexact result below DBL_MIN: glibc's ERANGE)."""
    i = len(text) - len(text.lstrip(C_SPACE))
    sign = -1.0 if text[i:i + 1] == "-" else 1.0
    j = i + (text[i:i + 1] in ("-", "+"))
    if m := _SPECIAL_RE.match(text, j):
        word = m.group().lower()
        return math.copysign(math.inf if word.startswith("inf") else math.nan, sign), m.end(), False
    if m := _HEX_RE.match(text, j):
        whole, frac, only, power = m.group(1) or "", m.group(2) or "", m.group(3) or "", m.group(4) or "0"
        mant = whole + frac + only
        try:
            value = float.fromhex(m.group())
        except OverflowError:
            value = math.inf

        def exact() -> Fraction:
            return Fraction(int(mant, 16), 16 ** len(frac + only)) * Fraction(2) ** int(power)
        nonzero = mant.strip("0") != ""
    elif m := _DEC_RE.match(text, j):
        body = m.group()
        value = float(body)

        def exact() -> Fraction:
            return Fraction(body)
        nonzero = re.match(r"[0.]*[eE]|[0.]*$", body) is None
    else:
        return 0.0, 0, False
    out_of_range = math.isinf(value) or nonzero and (value == 0 or abs(value) < DBL_MIN and not _is(exact, value))
    return math.copysign(value, sign), m.end(), out_of_range


def _is(exact: Callable[[], Fraction], value: float) -> bool:
    """Whether value is exactly the number read (a subnormal's check; too long a number counts as inexact)."""
    try:
        return Fraction(value) == exact()
    except (ValueError, OverflowError):
        return False
