"""Reading Dockerfile text into syntax nodes: lines, directives, continuations, flags, heredocs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from minibuild.dockerfile.expand import ExpansionError, ShellLexer
from minibuild.dockerfile.godump import GO_SPACE, go_quote, go_trim_left_space, go_trim_space
from minibuild.dockerfile.syntax import Directive, Heredoc, SyntaxNode, SyntaxTree
from minibuild.errors import DockerfileError, SourceSpan

__all__ = ["decode_dockerfile", "replace_invalid_bytes", "detect_syntax", "parse", "parse_directive", "parse_line", "parse_heredoc_word", "heredocs_from_line", "parse_words"]

MAX_LINE = 65535
_RE_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_RE_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_RE_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
_HEREDOC_COMMANDS = frozenset({"add", "copy", "run"})
_CONTINUATION = {
    "\\": re.compile(r"([^\\])\\[ \t]*\Z|^\\[ \t]*\Z"),
    "`": re.compile(r"([^`])`[ \t]*\Z|^`[ \t]*\Z"),
}
_HEREDOC_LINE_LEXER = ShellLexer("\\", raw_quotes=True, raw_escapes=True, skip_unset_env=True)
_HEREDOC_WORD_LEXER = ShellLexer("\\", skip_unset_env=True)
_HEREDOC_WORD_RAW_LEXER = ShellLexer("\\", raw_quotes=True, skip_unset_env=True)
_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"
_INVALID_BYTE = re.compile("[\udc80-\udcff]")  # how decode_dockerfile keeps a byte that is not UTF-8


class _LineError(DockerfileError):
    """A line-parser failure without a location yet; the parser adds it."""


@dataclass(slots=True)
class _Directives:
    """The parser directives read so far (escape, syntax) and whether the directive lines are over."""

    escape: str = "\\"
    done: bool = False
    seen: set[str] = field(default_factory=set)
    found: list[Directive] = field(default_factory=list)

    def feed(self, line: str, lineno: int) -> bool:
        """possibleParserDirective: returns True when ``line`` is a directive."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _RE_DIRECTIVE.match(go_trim_left_space(line[1:]))
        if m is None:
            self.done = True
            return False
        key = m.group(1).lower()
        if key not in _VALID_DIRECTIVES:
            self.done = True
            return False
        if key in self.seen:
            raise _LineError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        value = m.group(2)
        if key == "escape":
            if value not in ("`", "\\"):
                raise _LineError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value
        self.found.append(Directive(name=key, value=value, line=lineno))
        return True


def _trim_newline(s: str) -> str:
    return s.rstrip("\r\n")


def _is_comment(s: str) -> bool:
    return go_trim_left_space(s).startswith("#")


def _split_lines(text: str) -> list[str]:
    """bufio.Scanner with BuildKit's scanLines: tokens keep their ``\\n``."""
    pieces = text.split("\n")
    tokens = [p + "\n" for p in pieces[:-1]]
    if pieces[-1]:
        tokens.append(pieces[-1])
    return tokens


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    regex = _CONTINUATION[escape]
    if regex.search(line):
        return regex.sub(lambda m: m.group(1) or "", line), False
    return line, True


# --- flags and words -------------------------------------------------------------------------


def _byte_is_space(b: int) -> bool:
    return chr(b) in GO_SPACE


def extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """extractBuilderFlags: leading ``--words`` (byte-wise, Latin-1 runes) and the remainder."""
    data = line.encode("utf-8", "surrogateescape")
    esc = ord(escape)
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = 0
    blank_ok = False
    n = len(data)
    pos = 0
    ch = 0
    while pos <= n:
        if pos != n:
            ch = data[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if _byte_is_space(ch):
                pos += 1
                continue
            if ch != 0x2D or pos + 1 == n or data[pos + 1] != 0x2D:
                return data[pos:].decode("utf-8", "surrogateescape"), words
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            w = "".join(word)
            if w != "--" and (blank_ok or w):
                words.append(w)
            break
        if phase == in_word:
            if _byte_is_space(ch):
                w = "".join(word)
                phase = in_spaces
                if w == "--":
                    return data[pos:].decode("utf-8", "surrogateescape"), words
                if blank_ok or w:
                    words.append(w)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in (0x27, 0x22):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == esc:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = data[pos]
            word.append(chr(ch))
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == esc:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = data[pos]
        word.append(chr(ch))
        pos += 1
    return "", words


def parse_words(rest: str, escape: str = "\\") -> list[str]:
    """parseWords: split on whitespace outside quotes, keeping quotes and escapes in the words; an invalid byte
    (a surrogate escape, see ``decode_dockerfile``) becomes U+FFFD, as it does in Go's loop over runes."""
    rest = replace_invalid_bytes(rest)
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    n = len(rest)
    pos = 0
    ch = ""
    while pos <= n:
        if pos != n:
            ch = rest[pos]
        if phase == in_spaces:
            if pos == n:
                break
            if ch in GO_SPACE:
                pos += 1
                continue
            phase = in_word
        if phase in (in_word, in_quote) and pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if ch in GO_SPACE:
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


# --- line parsers (dispatch table) ------------------------------------------------------------

_Parsed = tuple[tuple[str, ...], bool, SyntaxNode | None]  # args, json, sub


def _split_ws(rest: str) -> tuple[str, ...]:
    if rest == "":
        return ()
    return tuple(_RE_WHITESPACE.split(rest))


def _reject_constant(name: str) -> object:
    raise ValueError(name)


def _fix_surrogates(s: str) -> str:
    # Go's encoding/json turns invalid \u escapes (lone surrogates) into U+FFFD.
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


class _NotJSON(Exception):
    pass


def _parse_json(rest: str) -> tuple[str, ...]:
    rest = go_trim_left_space(rest)
    if not rest.startswith("["):
        raise _NotJSON()
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _NotJSON() from None
    if not isinstance(value, list):
        raise _NotJSON()
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _LineError(_NOT_STRINGS)
        out.append(_fix_surrogates(item))
    return tuple(out)


def _maybe_json(rest: str) -> _Parsed:
    if rest == "":
        return (), False, None
    try:
        return _parse_json(rest), True, None
    except _NotJSON:
        return (rest,), False, None


def _maybe_json_to_list(rest: str) -> _Parsed:
    try:
        return _parse_json(rest), True, None
    except _NotJSON:
        return _split_ws(rest), False, None


def _name_val(rest: str, key: str, escape: str) -> _Parsed:
    words = parse_words(rest, escape)
    if not words:
        return (), False, None
    if "=" not in words[0]:
        parts = _RE_WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _LineError(f"{key} must have two arguments")
        return (parts[0], parts[1], ""), False, None
    args: list[str] = []
    for word in words:
        if "=" not in word:
            raise _LineError(
                f"Syntax error - can't find = in {go_quote(word)}. Must be of the form: name=value"
            )
        k, v = word.split("=", 1)
        args += [k, v, "="]
    return tuple(args), False, None


def _healthcheck(rest: str) -> _Parsed:
    data = rest.encode("utf-8", "surrogateescape")
    sep = 0
    while sep < len(data) and not _byte_is_space(data[sep]):
        sep += 1
    nxt = sep
    while nxt < len(data) and _byte_is_space(data[nxt]):
        nxt += 1
    if sep == 0:
        return (), False, None
    typ = data[:sep].decode("utf-8", "surrogateescape")
    args, is_json, _ = _maybe_json(data[nxt:].decode("utf-8", "surrogateescape"))
    return (typ, *args), is_json, None


def _dispatch(cmd: str, rest: str, escape: str, filename: str) -> _Parsed:
    match cmd:
        case "add" | "copy" | "volume":
            return _maybe_json_to_list(rest)
        case "run" | "cmd" | "entrypoint" | "shell":
            return _maybe_json(rest)
        case "from" | "expose":
            return _split_ws(rest), False, None
        case "maintainer" | "stopsignal" | "user" | "workdir":
            return ((rest,) if rest else ()), False, None
        case "env":
            return _name_val(rest, "ENV", escape)
        case "label":
            return _name_val(rest, "LABEL", escape)
        case "arg":
            return tuple(parse_words(rest, escape)), False, None
        case "healthcheck":
            return _healthcheck(rest)
        case "onbuild":
            if rest == "":
                return (), False, None
            return (), False, _node_from_line(rest, escape, (), filename)
        case _:
            return ("",), False, None


def _node_from_line(line: str, escape: str, comments: tuple[str, ...], filename: str) -> SyntaxNode:
    parts = _RE_WHITESPACE.split(go_trim_space(line), maxsplit=1)
    cmd = parts[0]
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = extract_flags(parts[1], escape)
    rest = go_trim_space(rest)
    args, is_json, sub = _dispatch(cmd.lower(), rest, escape, filename)
    return SyntaxNode(
        keyword=cmd,
        args=args,
        flags=tuple(flags),
        json=is_json,
        sub=sub,
        original=line,
        comments=comments,
        filename=filename,
    )


def _can_contain_heredoc(node: SyntaxNode) -> bool:
    if node.value == "onbuild" and node.sub is not None:
        node = node.sub
    return node.value in _HEREDOC_COMMANDS and not node.json


# --- heredocs -----------------------------------------------------------------------------------


def parse_heredoc_word(word: str) -> Heredoc | None:
    """ParseHeredoc: a heredoc from ONE word such as ``<<-'EOF'``; None when it is not one."""
    m = _RE_HEREDOC.match(word)
    if m is None:
        return None
    fd_text, dash, rest = m.groups()
    if rest == "":
        return None
    try:
        fd = int(fd_text) if fd_text else 0
    except ValueError:
        fd = 0
    if fd >= 1 << 64:
        fd = 0
    try:
        words = _HEREDOC_WORD_LEXER.process_words(rest, {})
    except ExpansionError as exc:
        raise _LineError(exc.message) from None
    if len(words) != 1:
        return None
    try:
        raw = _HEREDOC_WORD_RAW_LEXER.process_words(rest, {})
    except ExpansionError as exc:
        raise _LineError(exc.message) from None
    if len(raw) != len(words):
        raise _LineError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    word0 = words[0]
    quotes = word0.count("'") + word0.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(name=word0, file_descriptor=fd, expand=quotes == raw_quotes, chomp=dash == "-")


def heredocs_from_line(line: str) -> list[Heredoc]:
    """heredocsFromLine: every heredoc word of a logical line, in order (bodies not read)."""
    try:
        words = _HEREDOC_LINE_LEXER.process_words(line, {})
    except ExpansionError:
        words = []
    docs: list[Heredoc] = []
    for word in words:
        doc = parse_heredoc_word(word)
        if doc is not None:
            docs.append(doc)
    return docs


# --- the parser ---------------------------------------------------------------------------------


def decode_dockerfile(data: bytes) -> str:
    """The one place Dockerfile bytes become text (every reader: parse, plan, build, graph, the API, the pytest
    plugin): UTF-8, each invalid byte kept as a surrogate escape (U+DC80 + byte), as BuildKit keeps the byte, so
    a command runs with it and a cache key tells it apart. The words ``parse_words`` splits (ENV, LABEL, ARG)
    turn it into U+FFFD, as Go's rune loop does; JSON writes it as an escape (``minibuild.digest``)."""
    return data.decode("utf-8", "surrogateescape")


def replace_invalid_bytes(text: str) -> str:
    """``text`` with each invalid byte ``decode_dockerfile`` kept turned into U+FFFD: what Go makes of it where
    it loops over runes (``parse_words``) or writes JSON (a RUN's argv and env reach the process through the
    runtime's JSON config, so Docker and BuildKit run the command with U+FFFD)."""
    return _INVALID_BYTE.sub("\ufffd", text) if _INVALID_BYTE.search(text) else text


def _decode(text: str | bytes) -> str:
    return decode_dockerfile(text) if isinstance(text, bytes) else text


def parse(text: str | bytes, *, filename: str = "Dockerfile") -> SyntaxTree:
    """Parse Dockerfile text exactly as BuildKit's ``parser.Parse`` does."""
    text = _decode(text)
    tokens = _split_lines(text)
    d = _Directives()
    children: list[SyntaxNode] = []
    warnings: list[str] = []
    comments: list[str] = []
    current = 0
    i = 0
    n = len(tokens)

    def err(message: str, start: int, end: int | None = None) -> DockerfileError:
        return DockerfileError(
            message,
            span=SourceSpan(file=filename, line=max(start, 1), end_line=end if end and end > start else None),
        )

    def too_long(tok: str, lineno: int) -> None:
        content = tok[:-1] if tok.endswith("\n") else tok
        if len(content.encode("utf-8", "surrogateescape")) > MAX_LINE:
            raise err(f"dockerfile line greater than max allowed size of {MAX_LINE}", lineno)

    while i < n:
        raw = tokens[i]
        i += 1
        too_long(raw, current + 1)
        if current == 0 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if _is_comment(raw):
            comment = go_trim_space(raw[1:])
            comments = comments + [comment] if comment else []
        line = go_trim_left_space(_trim_newline(raw))
        try:
            is_directive = d.feed(line, current + 1)
        except _LineError as exc:
            raise err(exc.message, current + 1) from None
        if is_directive and comments:
            comments = comments[:-1]
        if _is_comment(line):
            line = ""
        current += 1
        start = current
        logical, end_of_line = _trim_continuation(line, d.escape)
        if end_of_line and logical == "":
            continue
        pieces = [logical]
        empty_continuation = False
        while not end_of_line and i < n:
            raw = tokens[i]
            i += 1
            too_long(raw, current + 1)
            cont = _trim_newline(raw)
            try:
                d.feed(cont, current + 1)
            except _LineError as exc:
                raise err(exc.message, current + 1) from None
            current += 1
            if _is_comment(raw):
                continue
            if go_trim_left_space(cont) == "":
                empty_continuation = True
                continue
            cont, end_of_line = _trim_continuation(cont, d.escape)
            pieces.append(cont)
        logical = "".join(pieces)
        if empty_continuation:
            warnings.append("Empty continuation line found in: " + logical)
        try:
            node = _node_from_line(logical, d.escape, tuple(comments), filename)
        except _LineError as exc:
            raise err(exc.message, start, current) from None
        heredocs: list[Heredoc] = []
        if _can_contain_heredoc(node) and "<<" in logical:
            try:
                docs = heredocs_from_line(logical)
            except _LineError as exc:
                raise err(exc.message, start, current) from None
            for doc in docs:
                body: list[str] = []
                terminated = False
                while i < n:
                    raw = tokens[i]
                    i += 1
                    too_long(raw, current + 1)
                    current += 1
                    candidate = _trim_newline(raw)
                    if doc.chomp:
                        candidate = candidate.lstrip("\t")
                    if candidate == doc.name:
                        terminated = True
                        break
                    body.append(raw)
                if not terminated:
                    raise err("unterminated heredoc", start, current)
                heredocs.append(
                    Heredoc(
                        name=doc.name,
                        file_descriptor=doc.file_descriptor,
                        expand=doc.expand,
                        chomp=doc.chomp,
                        content="".join(body),
                    )
                )
        children.append(
            SyntaxNode(
                keyword=node.keyword,
                args=node.args,
                flags=node.flags,
                json=node.json,
                sub=node.sub,
                heredocs=tuple(heredocs),
                original=node.original,
                start_line=start,
                end_line=current,
                comments=node.comments,
                filename=filename,
            )
        )
        comments = []
    if not children:
        raise err("file with no instructions", max(current, 1))
    return SyntaxTree(
        children=tuple(children),
        directives=tuple(d.found),
        escape=d.escape,
        warnings=tuple(warnings),
        filename=filename,
    )


def parse_line(line: str, *, escape: str = "\\", filename: str = "Dockerfile", line_no: int = 1) -> SyntaxNode:
    """Parse one logical instruction line (e.g. an ONBUILD trigger stored in an image config).

    The text may carry heredoc bodies after the first line, as BuildKit stores ONBUILD triggers.
    """
    tree = parse(line, filename=filename)
    if len(tree.children) != 1:
        raise DockerfileError(
            f"expected one instruction, found {len(tree.children)}",
            span=SourceSpan(file=filename, line=line_no),
        )
    return tree.children[0]


# --- directive detection without a full parse (BuildKit's DetectSyntax / ParseDirective) ---------


def _scan_directives(lines: list[str], key: str, comment: str, first_line: int) -> tuple[str, str, int] | None:
    seen: set[str] = set()
    lineno = first_line
    for line in lines:
        lineno += 1
        if not line.startswith(comment):
            return None
        m = _RE_DIRECTIVE.match(go_trim_left_space(line[len(comment) :]))
        if m is None:
            return None
        name = m.group(1).lower()
        if name not in _VALID_DIRECTIVES or name in seen:
            return None
        seen.add(name)
        if name == key:
            value = m.group(2)
            return value.split(" ", 1)[0], value, lineno
    return None


def parse_directive(key: str, text: str | bytes, *, any_format: bool = False) -> tuple[str, str, int] | None:
    """Find directive ``key`` at the top of ``text``: (first word, full value, line) or None.

    With ``any_format`` (what BuildKit's DetectSyntax does for ``syntax``) ``//`` comments and a
    JSON object are accepted too.  A ``#!`` first line is skipped.
    """
    text = _decode(text)
    if text.startswith("\ufeff"):
        text = text[1:]
    first, sep, rest = text.partition("\n")
    line0 = 0
    if first.startswith("#!"):
        text, line0 = rest, 1
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in text.split("\n")]
    if lines and lines[-1] == "" and text.endswith("\n"):
        lines.pop()
    found = _scan_directives(lines, key, "#", line0)
    if found is not None or not any_format:
        return found
    found = _scan_directives(lines, key, "//", line0)
    if found is not None:
        return found
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if isinstance(obj, dict) and isinstance(obj.get(key), str):
        return obj[key], obj[key], line0
    return None


def detect_syntax(text: str | bytes) -> tuple[str, str, int] | None:
    """BuildKit's DetectSyntax: the ``# syntax=`` frontend reference, its full value and line."""
    return parse_directive("syntax", text, any_format=True)
