"""Docker's .dockerignore rules: reading the file and matching context paths as moby/patternmatcher does.

Semantics (moby/patternmatcher + moby/patternmatcher/ignorefile, as used by BuildKit's context transfer):

* lines starting with ``#`` are comments (only at column 0), blank lines are skipped, a UTF-8 BOM is dropped;
* each pattern is trimmed, cleaned like Go's ``filepath.Clean`` and a leading ``/`` is removed;
* ``!pattern`` re-includes; the LAST matching pattern wins;
* a pattern matching a directory also matches everything below it;
* ``*`` and ``?`` never cross ``/``; ``**`` matches any number of directories (even none);
  ``[...]`` classes and ``\\`` escapes follow Go's ``filepath.Match``;
* matching walks parents first and carries per-pattern results down (``MatchesUsingParentResults``), which is
  what the context walker in BuildKit (fsutil) and the classic builder (moby archive) both do.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import field
from functools import lru_cache
from pathlib import Path

from minibuild.errors import ContextError
from minibuild.record import record
from minibuild.wildcard import CHAR, DIRS, STAR, START, Token, Wildcard, one_char_class

DOCKERIGNORE = ".dockerignore"

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
_REGEX_ESCAPE = set(".+()|{}$")
_NOT_SLASH = one_char_class("^/")
_NEVER = re.compile("(?!)")


class BadPatternError(ValueError):
    """A pattern is malformed in the sense of Go's ``filepath.ErrBadPattern``."""


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` for slash-separated paths ("" becomes ".")."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


# ---------------------------------------------------------------------------------------------- filepath.Match


def _scan_class(pattern: str, i: int) -> tuple[list[tuple[str, str]], bool, int]:
    """Parse a ``[...]`` class starting after ``[`` at ``i``; return (ranges, negated, index after ``]``)."""
    n = len(pattern)
    negated = False
    if i < n and pattern[i] == "^":
        negated = True
        i += 1
    ranges: list[tuple[str, str]] = []

    def char(j: int) -> tuple[str, int]:
        if j >= n:
            raise BadPatternError(pattern)
        c = pattern[j]
        if c in "-]":
            raise BadPatternError(pattern)
        if c == "\\":
            j += 1
            if j >= n:
                raise BadPatternError(pattern)
            c = pattern[j]
        return c, j + 1

    first = True
    while True:
        if i < n and pattern[i] == "]" and not first:
            return ranges, negated, i + 1
        lo, i = char(i)
        hi = lo
        if i < n and pattern[i] == "-":
            hi, i = char(i + 1)
        ranges.append((lo, hi))
        first = False


def validate_pattern(pattern: str) -> None:
    """Raise BadPatternError if Go's ``filepath.Match`` would reject ``pattern``."""
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise BadPatternError(pattern)
            i += 2
        elif c == "[":
            _, _, i = _scan_class(pattern, i + 1)
        else:
            i += 1


def _class_pred(ranges: list[tuple[str, str]], negated: bool) -> re.Pattern[str]:
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi)
    if negated:
        return one_char_class("^/" + body)
    return one_char_class(body) if body else _NEVER


@lru_cache(maxsize=1024)
def match_wildcard(pattern: str) -> Wildcard:
    """Compile Go ``filepath.Match`` syntax (``/`` separator) for the linear-time matcher; BadPatternError if
    malformed."""
    validate_pattern(pattern)
    out: list[Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(Token(STAR, _NOT_SLASH))
            i += 1
        elif c == "?":
            out.append(Token(CHAR, _NOT_SLASH))
            i += 1
        elif c == "\\":
            out.append(Token(CHAR, pattern[i + 1]))
            i += 2
        elif c == "[":
            ranges, negated, i = _scan_class(pattern, i + 1)
            out.append(Token(CHAR, _class_pred(ranges, negated)))
        else:
            out.append(Token(CHAR, c))
            i += 1
    return Wildcard(out)


def go_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match(pattern, name)`` on Linux; BadPatternError when the pattern is malformed."""
    return match_wildcard(pattern).match(name)


def contains_wildcards(name: str) -> bool:
    """BuildKit's containsWildcards: an unescaped ``*``, ``?`` or ``[``."""
    i = 0
    while i < len(name):
        c = name[i]
        if c == "\\":
            i += 2
            continue
        if c in "*?[":
            return True
        i += 1
    return False


# ---------------------------------------------------------------------------------------------- patternmatcher


@record
class Pattern:
    """One compiled ignore pattern (cleaned text without the ``!``)."""

    text: str
    exclusion: bool
    kind: str
    matcher: Wildcard | None = field(default=None, compare=False)

    def match(self, path: str) -> bool:
        if self.kind == _EXACT:
            return path == self.text
        if self.kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.matcher is not None
        return self.matcher.match(path)


def _compile(text: str) -> tuple[str, Wildcard | None]:
    """patternmatcher's Pattern.compile: the match kind and, for its regexps, the same language as tokens for the
    linear-time matcher (``*`` is ``[^/]*``, ``**/`` is ``(.*/)?``, a trailing ``**`` is ``.*``)."""
    reg: list[Token] = []
    cls: list[str] | None = None  # the body of the [...] class being read
    kind = _EXACT
    i, n, token = 0, len(text), 0
    while i < n:
        c = text[i]
        i += 1
        if cls is not None and c not in "]\\":
            if c == "-" or c == "^":
                cls.append(c)
            else:
                cls.append(re.escape(c))
        elif c == "*":
            if i < n and text[i] == "*":
                i += 1
                if i < n and text[i] == "/":
                    i += 1
                if i >= n:
                    if kind == _EXACT:
                        kind = _PREFIX
                    else:
                        reg.append(Token(STAR, None))
                        kind = _REGEXP
                else:
                    reg.append(Token(DIRS))
                    kind = _REGEXP
                if token == 0:
                    kind = _SUFFIX
            else:
                reg.append(Token(STAR, _NOT_SLASH))
                kind = _REGEXP
        elif c == "?":
            reg.append(Token(CHAR, _NOT_SLASH))
            kind = _REGEXP
        elif c == "\\":
            if i < n:
                if cls is not None:
                    cls.append(re.escape(text[i]))
                else:
                    reg.append(Token(CHAR, text[i]))
                i += 1
                kind = _REGEXP
            else:
                reg.append(Token(CHAR, "\\"))
        elif c == "[":
            cls = []
            kind = _REGEXP
        elif c == "]":
            if cls is not None:
                try:
                    reg.append(Token(CHAR, one_char_class("".join(cls))))
                except re.error as exc:  # e.g. a reversed range "[z-a]": Go's regexp rejects it too
                    raise BadPatternError(text) from exc
            else:
                reg.append(Token(CHAR, "]"))
            cls = None
            kind = _REGEXP
        elif c == "^":  # not escaped by patternmatcher: a regex anchor, true only before anything is matched
            reg.append(Token(START))
        else:
            reg.append(Token(CHAR, c))
        token += 1
    if kind != _REGEXP:
        return kind, None
    if cls is not None:
        raise BadPatternError(text)
    return kind, Wildcard(reg)


def compile_patterns(patterns: Iterable[str], *, origin: str = DOCKERIGNORE) -> tuple[Pattern, ...]:
    """patternmatcher.New: trim, clean, split off ``!``, check syntax; ContextError naming ``origin`` if bad."""
    out: list[Pattern] = []
    for raw in patterns:
        p = raw.strip()
        if not p:
            continue
        p = clean_path(p)
        exclusion = False
        if p.startswith("!"):
            if len(p) == 1:
                raise ContextError(f'{origin}: illegal exclusion pattern: "!"')
            exclusion = True
            p = p[1:]
        try:
            validate_pattern(p)
            kind, matcher = _compile(p)
        except BadPatternError:
            raise ContextError(f"{origin}: syntax error in pattern {raw.strip()!r}") from None
        out.append(Pattern(text=p, exclusion=exclusion, kind=kind, matcher=matcher))
    return tuple(out)


def read_patterns(text: str) -> tuple[str, ...]:
    """ignorefile.ReadAll: the patterns of a .dockerignore file's text, normalised."""
    out: list[str] = []
    for n, line in enumerate(text.splitlines()):
        if n == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        p = line.strip()
        if not p:
            continue
        invert = p.startswith("!")
        if invert:
            p = p[1:].strip()
        if p:
            p = clean_path(p)
            if len(p) > 1 and p.startswith("/"):
                p = p[1:]
        out.append("!" + p if invert else p)
    return tuple(out)


MatchInfo = tuple[bool, ...]


class IgnoreMatcher:
    """Decides which context paths are ignored; cheap to query repeatedly (parent results are cached)."""

    def __init__(self, patterns: Iterable[str] = (), *, origin: str = DOCKERIGNORE) -> None:
        self.origin = origin
        self.raw: tuple[str, ...] = tuple(patterns)
        self.patterns = compile_patterns(self.raw, origin=origin)
        self.has_exclusions = any(p.exclusion for p in self.patterns)
        self._wildcard_exceptions = any(
            p.exclusion and any(ch in _strip_trailing_glob(p.text) for ch in "*[]?^\\") for p in self.patterns
        )
        self._cache: dict[str, tuple[bool, MatchInfo]] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __repr__(self) -> str:
        return f"IgnoreMatcher({list(self.raw)!r})"

    def match(self, path: str, parent: MatchInfo | None) -> tuple[bool, MatchInfo]:
        """patternmatcher's MatchesUsingParentResults for ``path`` given its parent directory's MatchInfo."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pat in enumerate(self.patterns):
            m = parent[i] if parent else False
            if not m:
                if pat.exclusion != matched:
                    continue
                m = pat.match(path)
                if not m and not parent:
                    parts = path.split("/")[:-1]
                    for k in range(len(parts)):
                        if pat.match("/".join(parts[: k + 1])):
                            m = True
                            break
            info[i] = m
            if m:
                matched = not pat.exclusion
        return matched, tuple(info)

    def info(self, path: str) -> tuple[bool, MatchInfo]:
        """(ignored, MatchInfo) of a clean relative path, computed parents-first like the context walkers."""
        hit = self._cache.get(path)
        if hit is not None:
            return hit
        parent: MatchInfo | None = None
        if "/" in path:
            parent = self.info(path.rsplit("/", 1)[0])[1]
        result = self.match(path, parent)
        if len(self._cache) < 200_000:
            self._cache[path] = result
        return result

    def ignored(self, rel_path: str) -> bool:
        """True when the context path ``rel_path`` (slash-separated, relative) is excluded."""
        p = clean_path(rel_path.lstrip("/"))
        if p in (".", ""):
            return False
        if not self.patterns:
            return False
        return self.info(p)[0]

    def matches_or_parent_matches(self, rel_path: str) -> bool:
        """patternmatcher's MatchesOrParentMatches (used for files read outside a walk)."""
        p = clean_path(rel_path.lstrip("/"))
        return self.match(p, None)[0] if p != "." else False

    def must_descend(self, dir_path: str) -> bool:
        """Whether an EXCLUDED directory still has to be walked because an exception may re-include a child.

        This is fsutil's optimisation: with only literal exceptions, walk the directory only when some
        exception lies below it; any exception with a wildcard forces the walk.
        """
        if not self.has_exclusions:
            return False
        if self._wildcard_exceptions:
            return True
        prefix = dir_path + "/"
        return any(p.exclusion and (_strip_trailing_glob(p.text) + "/").startswith(prefix) for p in self.patterns)


def _strip_trailing_glob(text: str) -> str:
    if text.endswith("/**"):
        text = text[:-3]
    if text.endswith("/*"):
        text = text[:-2]
    return text


def _ignore_candidates(context: Path, dockerfile: Path | None) -> list[Path]:
    specific = [dockerfile.with_name(dockerfile.name + DOCKERIGNORE)] if dockerfile is not None else []
    return [*specific, context / DOCKERIGNORE]


def ignore_file_for(context: Path, dockerfile: Path | None) -> Path | None:
    """The ignore file BuildKit uses: ``<Dockerfile>.dockerignore`` next to the Dockerfile, else ``.dockerignore``."""
    return next((p for p in _ignore_candidates(context, dockerfile) if os.path.lexists(p)), None)


def load_ignore(context: Path, dockerfile: Path | None = None) -> IgnoreMatcher:
    """Read the ignore file for a build (see ``ignore_file_for``); an empty matcher when there is none.

    Each candidate is read with ``confine.read_build_file``: inside the context, a symlink is resolved inside it
    (one pointing out reads as missing), and a FIFO, device or file over 16 MiB is an error, never opened."""
    from minibuild.fs.confine import read_build_file

    for path in _ignore_candidates(context, dockerfile):
        data = read_build_file(context, path, what=path.name, error=ContextError)
        if data is not None:
            return IgnoreMatcher(read_patterns(data.decode("utf-8", errors="surrogateescape")), origin=path.name)
    return IgnoreMatcher(())
