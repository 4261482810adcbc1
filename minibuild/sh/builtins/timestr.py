"""busybox's TIME strings (date -d, touch -d/-t) to seconds since the epoch, in UTC (the emulated shell has no TZ)."""

from __future__ import annotations

import re
import time

_N = r"\s*((?>\d{1,2}))"  # strptime's %m %d %H %M %S: optional blanks, one or two digits
_Y = r"\s*((?>\d{1,4}))"
_HMS = _N + ":" + _N + "(?::" + _N + ")?"
_FORMS = [  # (regex, fields) for the forms with a colon or a dash; checked like strptime checks them
    (re.compile(_HMS), "HMS"),
    (re.compile(_N + r"\." + _N + "-" + _HMS), "mdHMS"),
    (re.compile(_Y + r"\." + _N + r"\." + _N + "-" + _HMS), "YmdHMS"),
    (re.compile(_Y + "-" + _N + "-" + _N + r"\s*" + _HMS), "YmdHMS"),
    (re.compile(_Y + "-" + _N + "-" + _N + r"\s*" + _N), "YmdH"),
    (re.compile(_Y + "-" + _N + "-" + _N), "Ymd"),
]
_RANGES = {"m": (1, 12), "d": (1, 31), "H": (0, 23), "M": (0, 59), "S": (0, 61), "Y": (0, 9999)}
_DIGITS = {2: "M", 4: "HM", 6: "dHM", 8: "mdHM", 10: "ymdHM", 12: "YmdHM"}  # [[[[[YY]YY]MM]DD]hh]mm by length
_LIMITS = {"m": 12, "d": 31, "H": 23, "M": 59, "S": 60, "y": 99, "Y": 9999}


class BadTime(ValueError):
    """A TIME string busybox rejects ("invalid date '...'")."""


def parse_time(text: str, now: int) -> int:
    """Seconds since the epoch for a busybox TIME string; fields it leaves out come from `now`."""
    if text.startswith("@"):
        if not re.fullmatch(r"-?\d+", text[1:]):
            raise BadTime(text)
        return _representable(int(text[1:]), text)
    base = time.gmtime(now)
    tm = {"Y": base.tm_year, "m": base.tm_mon, "d": base.tm_mday, "H": 0, "M": 0, "S": 0}
    if ":" in text or "-" in text:
        for rx, fields in _FORMS:
            m = rx.fullmatch(text)
            if m:
                break
        else:
            raise BadTime(text)
        if ":" in text and fields in ("YmdH", "Ymd"):
            raise BadTime(text)
        for f, v in zip(fields, m.groups()):
            if v is not None:
                lo, hi = _RANGES[f]
                if not lo <= int(v) <= hi:
                    raise BadTime(text)
                tm[f] = int(v)
    else:
        m = re.fullmatch(r"(\d+)(?:\.(\d+))?", text)
        if m is None or len(m.group(1)) not in _DIGITS:
            raise BadTime(text)
        fields = _DIGITS[len(m.group(1))]
        tm["S"] = 0
        digits, pos = m.group(1), 0
        for f in fields:
            width = 4 if f == "Y" else 2
            v, pos = int(digits[pos:pos + width]), pos + width
            if v > _LIMITS[f]:
                raise BadTime(text)
            tm[f] = v
        if "y" in fields:  # two-digit year: the one within 50 years of now
            year = tm.pop("y") + base.tm_year // 100 * 100
            year += 100 if year < base.tm_year - 50 else -100 if year > base.tm_year + 50 else 0
            tm["Y"] = year
        if m.group(2) is not None:
            if int(m.group(2)) > _LIMITS["S"]:
                raise BadTime(text)
            tm["S"] = int(m.group(2))
    return _representable(_timegm(tm["Y"], tm["m"], tm["d"], tm["H"], tm["M"], tm["S"]), text)


def _representable(t: int, text: str) -> int:
    """`t` when the C library can turn it into a date (busybox: 'invalid date' otherwise)."""
    try:
        time.gmtime(t)
    except (OverflowError, ValueError, OSError):
        raise BadTime(text) from None
    return t


def _timegm(year: int, month: int, day: int, hour: int, minute: int, sec: int) -> int:
    """Like mktime in UTC: out-of-range months and days roll over (month 0 is December, day 0 the last day)."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    y = year - (month <= 2)  # days from the civil date (proleptic Gregorian, any year)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468 + day - 1
    return days * 86400 + hour * 3600 + minute * 60 + sec
