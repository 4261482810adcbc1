"""Shell pattern matching (`*`, `?`, `[...]`) as Python regexes, with quoted characters kept literal."""

from __future__ import annotations

import re
from collections.abc import Sequence

CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "print": r" -~", "graph": r"!-~", "cntrl": r"\x00-\x1f\x7f", "word": r"\w",
}

Chars = Sequence[tuple[str, bool]]


def has_magic(chars: Chars) -> bool:
    return any(not q and c in "*?[" for c, q in chars)


def to_regex(chars: Chars) -> str:
    """Translate (char, quoted) pairs to a regex body (no anchors)."""
    out: list[str] = []
    i = 0
    n = len(chars)
    while i < n:
        c, q = chars[i]
        if q:
            out.append(re.escape(c))
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            neg = False
            if j < n and not chars[j][1] and chars[j][0] in "!^":
                neg = True
                j += 1
            items: list[str] = []
            first = True
            closed = False
            while j < n:
                cj, qj = chars[j]
                if cj == "]" and not qj and not first:
                    closed = True
                    break
                first = False
                if cj == "[" and not qj and j + 1 < n and chars[j + 1][0] == ":":
                    k = j + 2
                    name = ""
                    while k < n and chars[k][0] != ":":
                        name += chars[k][0]
                        k += 1
                    if k + 1 < n and chars[k + 1][0] == "]" and name in CLASSES:
                        items.append(CLASSES[name])
                        j = k + 2
                        continue
                if cj == "-" and not qj and items and j + 1 < n and chars[j + 1][0] != "]":
                    items.append("-")
                    j += 1
                    continue
                items.append(re.escape(cj) if cj not in "-" else r"\-")
                j += 1
            if not closed:
                out.append(re.escape("["))
            else:
                out.append("[" + ("^" if neg else "") + "".join(items) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_pattern(chars: Chars) -> re.Pattern[str]:
    return re.compile(to_regex(chars), re.DOTALL)


def fullmatch(chars: Chars, text: str) -> bool:
    return compile_pattern(chars).fullmatch(text) is not None


def unquoted(text: str) -> list[tuple[str, bool]]:
    return [(c, False) for c in text]
