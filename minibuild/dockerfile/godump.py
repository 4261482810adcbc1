"""Go's ``strconv.Quote`` and ``%q`` of a string slice, as BuildKit's AST dump prints them."""

from __future__ import annotations

from collections.abc import Iterable

_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}

# Code points Go's unicode.IsSpace reports (White_Space property); Python's str.isspace differs.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def go_is_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    return ch in GO_SPACE


def go_trim_space(s: str) -> str:
    """Go's ``strings.TrimSpace``."""
    start, end = 0, len(s)
    while start < end and s[start] in GO_SPACE:
        start += 1
    while end > start and s[end - 1] in GO_SPACE:
        end -= 1
    return s[start:end]


def go_trim_left_space(s: str) -> str:
    """Go's ``strings.TrimLeftFunc(s, unicode.IsSpace)``."""
    i = 0
    while i < len(s) and s[i] in GO_SPACE:
        i += 1
    return s[i:]


def _is_print(ch: str) -> bool:
    if ch == " ":
        return True
    import unicodedata  # error messages only: the parse of a valid Dockerfile never quotes

    return unicodedata.category(ch)[0] in "LMNPS"


def go_quote(value: str) -> str:
    """Return ``strconv.Quote(value)``; lone surrogates from ``surrogateescape`` print as ``\\xNN``."""
    out = ['"']
    for ch in value:
        simple = _SIMPLE_ESCAPES.get(ch)
        if simple is not None:
            out.append(simple)
            continue
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte carried by surrogateescape
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # Go strings cannot hold surrogates; they decode as U+FFFD
            out.append("\ufffd")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif _is_print(ch):
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_quote_slice(values: Iterable[str]) -> str:
    """Return ``fmt.Sprintf("%q", values)`` for a ``[]string``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"
