"""Shell pattern matching (`*`, `?`, `[...]`, quoted characters literal) with the linear-time wildcard matcher."""

from __future__ import annotations

import re
from collections.abc import Sequence

from minibuild.wildcard import CHAR, STAR, Token, Wildcard, one_char_class

CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r" \t\n\r\f\v", "blank": r" \t", "punct": r"!-/:-@\[-`{-~", "xdigit": "0-9A-Fa-f",
    "print": r" -~", "graph": r"!-~", "cntrl": r"\x00-\x1f\x7f", "word": r"\w",
}

Chars = Sequence[tuple[str, bool]]


def has_magic(chars: Chars) -> bool:
    return any(not q and c in "*?[" for c, q in chars)


def compile_pattern(chars: Chars) -> Wildcard:
    """The pattern for the linear-time matcher (`*` and `?` match any char, `/` included)."""
    return Wildcard([Token(STAR) if k == "star" else Token(CHAR, None if k == "any" else p if k == "lit"
                                                              else one_char_class(p[1:-1]))
                     for k, p in _pieces(chars)])


def _pieces(chars: Chars) -> list[tuple[str, str]]:
    """(kind, text) per pattern element: ("lit", char), ("star", ""), ("any", ""), ("class", "[regex class]")."""
    out: list[tuple[str, str]] = []
    i = 0
    n = len(chars)
    while i < n:
        c, q = chars[i]
        if q:
            out.append(("lit", c))
        elif c == "*":
            out.append(("star", ""))
        elif c == "?":
            out.append(("any", ""))
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
                out.append(("lit", "["))
            else:
                out.append(("class", "[" + ("^" if neg else "") + "".join(items) + "]"))
                i = j
        else:
            out.append(("lit", c))
        i += 1
    return out


def fullmatch(chars: Chars, text: str) -> bool:
    return compile_pattern(chars).match(text)


def unquoted(text: str) -> list[tuple[str, bool]]:
    return [(c, False) for c in text]
