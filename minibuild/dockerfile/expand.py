"""BuildKit's shell-word lexer: variable expansion, quoting and word splitting (shell/lex.go)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import field

from minibuild.dockerfile.godump import GO_SPACE, go_quote
from minibuild.errors import DockerfileError, SourceSpan
from minibuild.record import record

__all__ = [
    "ExpansionError",
    "ShellLexer",
    "WordResult",
    "expand_word",
    "expand_words",
]

_EOF = ""
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


# words holding none of these characters come out of the lexer unchanged (a BOM is dropped at the very start)
_NEEDS_LEXING = {esc: re.compile("[$<'\"\ufeff" + re.escape(esc) + "]").search for esc in ("\\", "`")}
_PLAIN_WORD = re.compile("[^" + "".join(re.escape(c) for c in sorted(GO_SPACE)) + "]+")


class ExpansionError(DockerfileError):
    """A word could not be expanded (bad substitution, ``${V:?msg}``, unterminated quote...)."""


class _Fail(Exception):
    """Internal: the reason a word failed, wrapped into ExpansionError at the top."""


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


class _Scanner:
    __slots__ = ("text", "pos")

    def __init__(self, text: str) -> None:
        # Go's text/scanner drops a byte-order mark at the very start.
        self.pos = 1 if text.startswith("\ufeff") else 0
        self.text = text

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        if self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            return ch
        return _EOF


class _Words:
    """wordsStruct; its buffer is shared by nested calls, exactly as BuildKit's shellWord does."""

    __slots__ = ("shared", "words", "in_word")

    def __init__(self, shared: list[str]) -> None:
        self.shared = shared
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch in GO_SPACE:
            if self.in_word and self.shared:
                self.words.append("".join(self.shared))
                self.shared.clear()
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.shared.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for ch in s:
            self.add_char(ch)

    def add_raw_string(self, s: str) -> None:
        if s:
            self.shared.append(s)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.shared:
            self.words.append("".join(self.shared))
            self.shared.clear()
            self.in_word = False
        return self.words


@record
class WordResult:
    """The outcome of processing one word: the expanded text, the split words, names looked up."""

    result: str
    words: tuple[str, ...]
    matched: frozenset[str] = field(default_factory=frozenset)
    unmatched: frozenset[str] = field(default_factory=frozenset)


class _ShellWord:
    def __init__(self, lexer: ShellLexer, text: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.sc = _Scanner(text)
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.shared: list[str] = []
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # --- helpers -------------------------------------------------------------------------
    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        self.shared.clear()
        words = _Words(self.shared)
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            sc = self.sc
            esc = self.lx.escape
            quotes = not self.lx.skip_process_quotes
            while sc.peek() != _EOF:
                ch = sc.peek()
                if stop != _EOF and ch == stop:
                    sc.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    tmp = self.process_dollar()
                    result.append(tmp)
                    words.add_string(tmp)
                elif ch == "<":
                    tmp = self.process_possible_heredoc()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                elif quotes and ch == "'":
                    tmp = self.process_single_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                elif quotes and ch == '"':
                    tmp = self.process_double_quote()
                    result.append(tmp)
                    words.add_raw_string(tmp)
                else:
                    ch = sc.next()
                    if ch == esc:
                        if self.raw_escapes:
                            words.add_raw_char(ch)
                            result.append(ch)
                        ch = sc.next()
                        if ch == _EOF:
                            break
                        words.add_raw_char(ch)
                    else:
                        words.add_char(ch)
                    result.append(ch)
            if stop != _EOF:
                raise _Fail(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved

    def process_single_quote(self) -> str:
        sc = self.sc
        out: list[str] = []
        ch = sc.next()
        if self.lx.raw_quotes:
            out.append(ch)
        while True:
            ch = sc.next()
            if ch == _EOF:
                raise _Fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        sc = self.sc
        esc = self.lx.escape
        out: list[str] = []
        ch = sc.next()
        if self.lx.raw_quotes:
            out.append(ch)
        while True:
            nxt = sc.peek()
            if nxt == _EOF:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = sc.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.process_dollar())
                continue
            ch = sc.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                following = sc.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", esc):
                    ch = sc.next()
            out.append(ch)

    def process_possible_heredoc(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "<":
            return "<"
        sc.next()
        space: list[str] = []
        while sc.peek() in ("\t", "\r", " ") and sc.peek() != _EOF:
            space.append(sc.next())
        return "<<" + "".join(space)

    def process_name(self) -> str:
        sc = self.sc
        name: list[str] = []
        while sc.peek() != _EOF:
            ch = sc.peek()
            if not name and _is_digit(ch):
                while sc.peek() != _EOF and _is_digit(sc.peek()):
                    name.append(sc.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return sc.next()
            if not _is_letter(ch) and not _is_digit(ch) and ch != "_":
                break
            name.append(sc.next())
        return "".join(name)

    def process_dollar(self) -> str:
        sc = self.sc
        sc.next()
        if sc.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and self.lx.skip_unset_env:
                return "$" + name
            return value
        sc.next()
        first = sc.peek()
        if first == _EOF:
            raise _Fail("syntax error: missing '}'")
        if first in ("{", "}", ":"):
            raise _Fail("syntax error: bad substitution")
        name = self.process_name()
        ch = sc.next()
        chs = ch
        null_is_unset = False
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lx.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch in (":", "+", "-", "?", "#", "%"):
            if ch == ":":
                null_is_unset = True
                ch = sc.next()
                chs += ch
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise _Fail(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw)
            except _Fail:
                if sc.peek() == _EOF:
                    raise _Fail("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lx.skip_unset_env and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                if not found or (null_is_unset and value == ""):
                    return word
                return value
            if ch == "+":
                if not found or (null_is_unset and value == ""):
                    return ""
                return word
            if ch == "?":
                if not found:
                    raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch in ("%", "#"):
                greedy = False
                if word[:1] == ch:
                    greedy = True
                    word = word[1:]
                if ch == "%":
                    return _trim_suffix(word, value, greedy)
                return _trim_prefix(word, value, greedy)
            raise _Fail(f"unsupported modifier ({chs}) in substitution")
        if ch == "/":
            replace_all = sc.peek() == "/"
            if replace_all:
                sc.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except _Fail:
                if sc.peek() == _EOF:
                    raise _Fail("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except _Fail:
                if sc.peek() == _EOF:
                    raise _Fail("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lx.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            regex = _pattern_regex(pattern, greedy=True, anchored=False)
            if replace_all:
                template = replacement
                return regex.sub(lambda m: _go_expand_template(template, m), value)
            m = regex.search(value)
            if m is not None:
                value = value[: m.start()] + replacement + value[m.end() :]
            return value
        raise _Fail(f"unsupported modifier ({chs}) in substitution")


def _go_expand_template(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.Expand for a pattern without groups: ``$$``, ``$0``, ``${name}`` and ``$name``."""
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        name = ""
        if i < n and template[i] == "{":
            close = template.find("}", i + 1)
            inner = template[i + 1 : close] if close > 0 else ""
            if close > 0 and inner and all(c.isalnum() or c == "_" for c in inner):
                name = inner
                i = close + 1
            else:
                out.append("$")
                continue
        else:
            k = i
            while k < n and (template[k].isalnum() or template[k] == "_") and template[k].isascii():
                k += 1
            if k == i:
                out.append("$")
                continue
            name = template[i:k]
            i = k
        if name.isdigit() and int(name) == 0:
            out.append(match.group(0))
    return "".join(out)


def _pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    out: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 1 if pattern.startswith("\ufeff") else 0
    n = len(pattern)
    while i < n:
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            following = pattern[i] if i < n else ""
            if following in ("}", "/"):
                continue
            nxt = following
            i += 1
            if nxt not in ("*", "?", "\\"):
                shown = nxt if nxt else "\ufffd"
                raise _Fail(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
            out.append("\\" + nxt)
            continue
        if tok in "[]{}.+()|^$":
            out.append("\\" + tok)
            continue
        out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _pattern_regex(pattern, greedy=greedy, anchored=True).search(value)
    if m is not None:
        return value[m.end() :]
    return value


def _reverse_pattern(pattern: str) -> str:
    chars = list(pattern)
    out = [""] * len(chars)
    last = len(chars) - 1
    i = 0
    while i <= last:
        tok = chars[i]
        idx = last - i
        if tok == "\\" and i != last:
            out[idx - 1] = tok
            out[idx] = chars[i + 1]
            i += 2
        else:
            out[idx] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


@record(kw_only=False)
class ShellLexer:
    """A configured lexer (``shell.NewLex`` plus its option fields)."""

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process(
        self, word: str, env: Mapping[str, str], *, span: SourceSpan | None = None
    ) -> WordResult:
        """Expand ``word`` against ``env``; raise ExpansionError as ``failed to process "w": why``."""
        if not _NEEDS_LEXING[self.escape](word):
            # nothing to expand, quote, escape or read as a heredoc: the lexer returns the word itself, split at
            # Go's spaces (the common case: most words of a Dockerfile)
            return WordResult(result=word, words=tuple(_PLAIN_WORD.findall(word)))
        sw = _ShellWord(self, word, env)
        try:
            result, words = sw.process_stop_on(_EOF, self.raw_escapes)
        except _Fail as exc:
            raise ExpansionError(f"failed to process {go_quote(word)}: {exc}", span=span) from None
        return WordResult(
            result=result,
            words=tuple(words),
            matched=frozenset(sw.matched),
            unmatched=frozenset(sw.unmatched),
        )

    def process_word(self, word: str, env: Mapping[str, str], *, span: SourceSpan | None = None) -> str:
        """BuildKit's ``ProcessWord``: one word, no splitting."""
        return self.process(word, env, span=span).result

    def process_words(
        self, word: str, env: Mapping[str, str], *, span: SourceSpan | None = None
    ) -> list[str]:
        """BuildKit's ``ProcessWords``: expand, then split into words."""
        return list(self.process(word, env, span=span).words)


_LEXERS = {"\\": ShellLexer("\\"), "`": ShellLexer("`")}


def _lexer(escape: str) -> ShellLexer:
    lexer = _LEXERS.get(escape)
    if lexer is None:
        raise DockerfileError(f"invalid escape token '{escape}' does not match ` or \\")
    return lexer


def expand_word(
    word: str, env: Mapping[str, str], escape: str = "\\", *, span: SourceSpan | None = None
) -> str:
    """Expand one word as BuildKit's ``ProcessWord`` with default options."""
    return _lexer(escape).process_word(word, env, span=span)


def expand_words(
    word: str, env: Mapping[str, str], escape: str = "\\", *, span: SourceSpan | None = None
) -> list[str]:
    """Expand and split as BuildKit's ``ProcessWords`` with default options."""
    return _lexer(escape).process_words(word, env, span=span)
