"""awk values as busybox awk has them: numbers, strings, user-input strings ("strnum"), and their conversions.

Strings hold one character per byte (latin-1), so lengths, substr and comparisons are byte-wise, as in busybox.
"""

from __future__ import annotations

import math
import re

from minibuild.sh.cformat import Spec, render_float, render_int
from minibuild.sh.cformat import strtod as c_strtod


class StrNum(str):
    """A string from input (a field, getline, split, -v, ENVIRON): numeric when it looks like a number."""

    __slots__ = ()


Value = float | str | None  # None: never assigned (both "" and 0)

_OCT = re.compile(r"0[0-7]*")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")


PROGRAM_END = -2  # AwkError.line for errors busybox reports at the lexer's last line (reading a directory)


class AwkError(Exception):
    """A fatal awk error: busybox prints `awk: cmd. line:N: MESSAGE` and exits 1."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _c_strtod(s: str) -> tuple[float, int]:
    value, end, _ = c_strtod(s)
    return (value, end) if end else (0.0, 0)


def strtod(s: str) -> tuple[float, int]:
    """busybox's my_strtod: a leading 0 makes 0x... hex and 0NNN octal integers; else C strtod. (value, end)."""
    if s[:1] == "0" and len(s) > 1 and (s[1] in "xX" or s[1].isdigit()):
        if s[1] in "xX":
            m = _HEX.match(s)
            assert m is not None
            digits = m.group()[2:]
            if not digits:
                return 0.0, 1
            return float(min(int(digits, 16), (1 << 64) - 1)), m.end()
        m = _OCT.match(s)
        assert m is not None
        end = m.end()
        if end >= len(s) or not (s[end].isdigit() or s[end] == "."):
            return float(min(int(m.group(), 8), (1 << 64) - 1)), end
    return _c_strtod(s)


def to_num(v: Value) -> float:
    if v is None:
        return 0.0
    if isinstance(v, float):
        return v
    return strtod(v)[0] if v else 0.0


def looks_numeric(s: str) -> bool:
    """busybox's test of a user string: strtod, then only spaces and tabs may follow (an empty string is not)."""
    if not s:
        return False
    _, end = strtod(s)
    return s[end:].strip(" \t") == ""


def is_numeric(v: Value) -> bool:
    if v is None or isinstance(v, float):
        return True
    return isinstance(v, StrNum) and looks_numeric(v)


def truth(v: Value) -> bool:
    if is_numeric(v):
        return to_num(v) != 0
    return bool(v)


def _c_int(n: float) -> int:
    """C's (int) of a double (x86: INT_MIN when out of range)."""
    if math.isfinite(n) and -2**31 <= n < 2**31:
        return int(n)
    return -2**31


_FMT = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d*))?[hlLqjzt]*([a-zA-Z])?$")


def format_number(fmt: str, n: float) -> str:
    """snprintf(fmt, n) where fmt ends in one numeric conversion (CONVFMT, OFMT, a printf segment)."""
    m = re.search(r"%[^%a-zA-Z]*[a-zA-Z]?$", fmt)
    conv = fmt[-1:] if fmt else ""
    if not m or conv not in "diouxXeEfgG" or not conv:
        raise AwkError("Invalid format specifier")
    head = fmt[:m.start()].replace("%%", "%")
    sm = _FMT.match(m.group())
    if not sm:
        raise AwkError("Invalid format specifier")
    flags, width, prec, _ = sm.groups()
    spec = Spec(flags, int(width) if width else None, int(prec or 0) if prec is not None else None, conv)
    if conv in "diouxX":
        i = _c_int(n)
        return head + render_int(spec, i + (1 << 32) if conv in "ouxX" and i < 0 else i)
    return head + render_float(spec, n)


def num_to_str(n: float, fmt: str) -> str:
    """A number as a string: integral values as %lld, others through CONVFMT/OFMT (busybox's fmt_num)."""
    if math.isfinite(n) and n == int(n) and -2**63 <= n < 2**63:
        return str(int(n))
    return format_number(fmt, n)


def to_str(v: Value, convfmt: str = "%.6g") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return num_to_str(v, convfmt)
    return v


def compare(a: Value, b: Value, convfmt: str = "%.6g") -> int:
    """-1, 0 or 1: numerically when both are numeric, else as byte strings."""
    if is_numeric(a) and is_numeric(b):
        x, y = to_num(a), to_num(b)
        return (x > y) - (x < y)
    s, t = to_str(a, convfmt), to_str(b, convfmt)
    return (s > t) - (s < t)
