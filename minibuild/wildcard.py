"""One linear-time wildcard matcher: a glob compiled to tokens, run as a state-set automaton (never backtracks).

Every glob dialect in minibuild (Go's ``filepath.Match`` for COPY sources, moby's patternmatcher for
``.dockerignore``, the shell's ``case``/``${v#pat}``/pathname patterns) parses its own syntax into the same
``Token`` list; their differences (``*`` crossing ``/`` or not, ``**/``, class syntax) are the token kinds and
predicates.  Matching keeps the set of token positions reachable so far (a Thompson NFA) and caches each
(set, char) step, so a match costs O(len(text)) steps after warm-up and O(len(text) * len(tokens)) at worst:
a pattern such as ``*a*a*a*a*a*b`` cannot make it backtrack exponentially as a regex translation does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from minibuild.record import record

CHAR, STAR, DIRS = "char", "star", "dirs"  # one char; zero or more chars; nothing or anything ending in "/"
START = "start"  # matches nothing, and only before the first char (a regex "^" that patternmatcher leaves in)

# what one char must be: a literal, a one-char class regex (``[a-z]``, ``[^/]``), or None for any char
Pred = str | re.Pattern[str] | None


@record(kw_only=False)
class Token:
    """One element of a compiled pattern: a kind (CHAR, STAR, DIRS) and, for CHAR, what the char must be."""

    kind: str
    pred: Pred = None


def one_char_class(body: str) -> re.Pattern[str]:
    """A predicate from a regex class body (``a-z``, ``^/``): matched against a single char only, so it is O(1)."""
    return re.compile("[" + body + "]", re.DOTALL)


def _ok(pred: Pred, ch: str) -> bool:
    if pred is None:
        return True
    if isinstance(pred, str):
        return pred == ch
    return pred.fullmatch(ch) is not None


class Wildcard:
    """A compiled glob; ``match`` is a full match of the text."""

    __slots__ = ("tokens", "_start", "_accept", "_rows")

    def __init__(self, tokens: Sequence[Token]) -> None:
        self.tokens = tuple(tokens)
        self._accept = 1 << (2 * len(self.tokens))
        self._rows: dict[int, dict[str, int]] = {}
        self._start = self._closure(1, at_start=True)

    # states: bit 2k = "before token k", bit 2k+1 = "inside the DIRS token k"; bit 2n = matched everything
    def _closure(self, mask: int, *, at_start: bool = False) -> int:
        for k, tok in enumerate(self.tokens):
            if mask & (1 << (2 * k)) and tok.kind != CHAR and (at_start or tok.kind != START):
                mask |= 1 << (2 * k + 2)
                if tok.kind == DIRS:
                    mask |= 1 << (2 * k + 1)
        return mask

    def _step(self, mask: int, ch: str) -> int:
        out = 0
        for k, tok in enumerate(self.tokens):
            if mask & (1 << (2 * k)):
                if tok.kind == CHAR and _ok(tok.pred, ch):
                    out |= 1 << (2 * k + 2)
                elif tok.kind == STAR and _ok(tok.pred, ch):
                    out |= 1 << (2 * k)
            if tok.kind == DIRS and mask & (1 << (2 * k + 1)):
                out |= 1 << (2 * k + 1)
                if ch == "/":
                    out |= 1 << (2 * k + 2)
        return self._closure(out)

    def _next(self, mask: int, ch: str) -> int:
        row = self._rows.get(mask)
        if row is None:
            if len(self._rows) > 4096:  # a bounded cache: hostile text cannot grow it without end
                self._rows.clear()
            row = self._rows[mask] = {}
        nxt = row.get(ch)
        if nxt is None:
            if len(row) > 4096:
                row.clear()
            nxt = row[ch] = self._step(mask, ch)
        return nxt

    def ends(self, text: str, start: int = 0) -> Iterator[int]:
        """Every ``i`` (ascending) such that the pattern matches ``text[start:i]`` exactly."""
        mask = self._start
        if mask & self._accept:
            yield start
        for i in range(start, len(text)):
            mask = self._next(mask, text[i])
            if not mask:
                return
            if mask & self._accept:
                yield i + 1

    def match(self, text: str) -> bool:
        """Whether the pattern matches all of ``text``."""
        mask = self._start
        for ch in text:
            mask = self._next(mask, ch)
            if not mask:
                return False
        return bool(mask & self._accept)

    def fullmatch(self, text: str) -> bool | None:
        """``re.Pattern.fullmatch``'s contract (None when there is no match), for code written against regexes."""
        return True if self.match(text) else None

    def reversed(self) -> "Wildcard":
        """The pattern read backwards (it matches the reversed texts); for suffix searches. No DIRS tokens."""
        assert all(t.kind != DIRS for t in self.tokens)
        return Wildcard(self.tokens[::-1])

    def __repr__(self) -> str:
        return f"Wildcard({list(self.tokens)!r})"
