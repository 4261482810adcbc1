"""Tokenizer of the emulated shell: operators, words (with quotes and expansions parsed) and here-documents."""

from __future__ import annotations

import re
from collections.abc import Callable

from minibuild.errors import ShellError
from minibuild.record import record
from minibuild.sh.ast import DQ, SQ, Arith, CmdSub, Lit, Node, Param, Part, Word

OPERATORS = ("&&", "||", ";;", "<<-", "<<", ">>", ">&", "<&", ">|", "<>", ";", "&", "|", "(", ")", "<", ">")
META = set(" \t\n;&|()<>")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SPECIAL_PARAMS = set("#?@*$!-0123456789")
_DOLLAR_SQ = re.compile(r"((?:[^'\\]|\\.)*)'", re.DOTALL)
_DOLLAR_SQ_ESC = re.compile(r"\\([0-7]{1,3}|x[0-9a-fA-F]{1,2}|[abfnrtv\\'\"])")
_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'",
              '"': '"'}


def _dollar_sq_escape(m: re.Match[str]) -> str:
    """One escape of $'...' (other backslashes stay as written; a NUL byte is dropped, as busybox drops it)."""
    e = m.group(1)
    if e in _C_ESCAPES:
        return _C_ESCAPES[e]
    v = (int(e[1:], 16) if e[0] == "x" else int(e, 8)) & 0xFF
    return "" if v == 0 else chr(v) if v < 0x80 else bytes([v]).decode("utf-8", "surrogateescape")


@record(kw_only=False)
class Token:
    """A token: kind is WORD, OP, IONUM, NL or EOF."""

    kind: str
    value: object = None
    line: int = 0


def _merge(parts: list[Part]) -> tuple[Part, ...]:
    out: list[Part] = []
    for p in parts:
        if out and type(p) is Lit and type(out[-1]) is Lit:
            out[-1] = Lit(out[-1].text + p.text)
        elif out and type(p) is SQ and type(out[-1]) is SQ:
            out[-1] = SQ(out[-1].text + p.text)
        else:
            out.append(p)
    return tuple(out)


class Lexer:
    """Reads tokens from script text; `subparse` parses a nested command list for `$(...)`."""

    def __init__(self, src: str, subparse: Callable[["Lexer"], Node], parse_text: Callable[[str], Node]) -> None:
        self.src = src
        self.pos = 0
        self.subparse = subparse
        self.parse_text = parse_text
        self.sq_literal = False  # reading the word of a "${v:-word}": a ' there is an ordinary character
        self.spliced: list[tuple[int, int]] = []  # (position, lines) of here-document bodies taken out

    # ----- helpers
    def _peekc(self, off: int = 0) -> str:
        i = self.pos + off
        return self.src[i] if i < len(self.src) else ""

    def error(self, msg: str) -> ShellError:
        return ShellError(f"sh: line {self.line}: syntax error: {msg}")

    @property
    def line(self) -> int:
        """The script line at the position, counting the here-document lines spliced out before it."""
        return self.src.count("\n", 0, self.pos) + 1 + sum(n for at, n in self.spliced if self.pos >= at)

    # ----- tokens
    def next_token(self) -> Token:
        src = self.src
        while True:
            c = self._peekc()
            if c in (" ", "\t"):
                self.pos += 1
            elif c == "\\" and self._peekc(1) == "\n":
                self.pos += 2
            elif c == "#":
                while self.pos < len(src) and src[self.pos] != "\n":
                    self.pos += 1
            else:
                break
        line = self.line
        if self.pos >= len(src):
            return Token("EOF", None, line)
        c = src[self.pos]
        if c == "\n":
            self.pos += 1
            return Token("NL", None, line)
        for op in OPERATORS:
            if src.startswith(op, self.pos):
                self.pos += len(op)
                return Token("OP", op, line)
        m = re.compile(r"\d+(?=[<>])").match(src, self.pos)
        if m:
            self.pos = m.end()
            return Token("IONUM", int(m.group()), line)
        start = self.pos
        parts = self.read_parts(mode="word")
        return Token("WORD", Word(parts, src[start:self.pos]), line)

    def read_heredoc(self, delim: str, strip_tabs: bool, quoted: bool) -> Word:
        """Take the here-document body from the lines after the current one, splicing it out of the source."""
        src = self.src
        nl = src.find("\n", self.pos)
        if nl < 0:
            return Word((), "")
        i = nl + 1
        lines: list[str] = []
        end = len(src)
        while i < len(src):
            j = src.find("\n", i)
            line = src[i:] if j < 0 else src[i:j]
            nxt = len(src) if j < 0 else j + 1
            cmp = line.lstrip("\t") if strip_tabs else line
            if cmp == delim:
                end = nxt
                break
            lines.append(cmp)
            i = nxt
        else:
            end = len(src)
        body = "".join(x + "\n" for x in lines)
        self.spliced.append((nl + 1, src.count("\n", nl + 1, end)))
        self.src = src[: nl + 1] + src[end:]
        if quoted:
            return Word((SQ(body),), body)
        sub = Lexer(body, self.subparse, self.parse_text)
        return Word(sub.read_parts(mode="heredoc"), body)

    # ----- words
    def read_parts(self, mode: str, stops: str = "") -> tuple[Part, ...]:
        """Parse word parts. mode: word (stop at metachar), dq (stop at "), brace (stop at chars in `stops`),
        heredoc (to the end; only $, ` and \\ are special)."""
        parts: list[Part] = []
        while self.pos < len(self.src):
            src = self.src  # a here-document inside $(...) may splice the source while we read
            c = src[self.pos]
            if mode == "word" and c in META:
                break
            if mode == "brace" and c in stops:
                break
            if mode == "dq" and c == '"':
                break
            if c == "\\":
                n = self._peekc(1)
                if n == "\n":
                    self.pos += 2
                    continue
                if mode in ("dq", "heredoc"):
                    if n in ("$", "`", "\\") or (mode == "dq" and n == '"'):
                        parts.append(SQ(n))
                        self.pos += 2
                    else:
                        parts.append(SQ("\\"))
                        self.pos += 1
                    continue
                if n == "":
                    parts.append(SQ("\\"))
                    self.pos += 1
                    continue
                parts.append(SQ(n))
                self.pos += 2
                continue
            if c == "'" and (mode == "word" or mode == "brace" and not self.sq_literal):
                end = src.find("'", self.pos + 1)
                if end < 0:
                    raise self.error("unterminated quoted string")
                parts.append(SQ(src[self.pos + 1 : end]))
                self.pos = end + 1
                continue
            if c == '"' and mode in ("word", "brace"):
                self.pos += 1
                inner = self.read_parts(mode="dq")
                if self._peekc() != '"':
                    raise self.error("unterminated quoted string")
                self.pos += 1
                parts.append(DQ(inner))
                continue
            if c == "$":
                parts.append(self.read_dollar(mode))
                continue
            if c == "`":
                parts.append(self.read_backquote())
                continue
            parts.append(Lit(c) if mode in ("word", "brace") else SQ(c))
            self.pos += 1
        return _merge(parts)

    def read_backquote(self) -> Part:
        src = self.src
        i = self.pos + 1
        buf: list[str] = []
        while i < len(src) and src[i] != "`":
            if src[i] == "\\" and i + 1 < len(src) and src[i + 1] in "$`\\":
                buf.append(src[i + 1])
                i += 2
                continue
            buf.append(src[i])
            i += 1
        if i >= len(src):
            raise self.error("unterminated `")
        self.pos = i + 1
        return CmdSub(self.parse_text("".join(buf)))

    def read_dollar(self, mode: str) -> Part:
        src = self.src
        n = self._peekc(1)
        if n == "'" and mode in ("word", "brace"):  # $'...': busybox ash's C-style escapes
            m = _DOLLAR_SQ.match(src, self.pos + 2)
            if m is None:
                raise self.error("unterminated quoted string")
            self.pos = m.end()
            return SQ(_DOLLAR_SQ_ESC.sub(_dollar_sq_escape, m.group(1)))
        if src.startswith("$((", self.pos):
            return self.read_arith()
        if n == "(":
            self.pos += 2
            body = self.subparse(self)
            return CmdSub(body)
        if n == "{":
            return self.read_brace(mode)
        if n and n in SPECIAL_PARAMS:
            self.pos += 2
            return Param(n)
        m = NAME_RE.match(src, self.pos + 1)
        if m:
            self.pos = m.end()
            return Param(m.group())
        self.pos += 1
        return Lit("$") if mode in ("word", "brace") else SQ("$")

    def read_arith(self) -> Part:
        """`$((...))` as busybox ash reads it: always arithmetic, ended by the first `))` outside nested
        parentheses; an unbalanced `)` is part of the expression, and no `))` is a syntax error."""
        start = self.pos = self.pos + 3
        depth = 0
        parts: list[Part] = []
        while self.pos < len(self.src):
            src = self.src
            c = src[self.pos]
            if c == ")":
                if depth:
                    depth -= 1
                elif src.startswith("))", self.pos):
                    text = src[start:self.pos]
                    self.pos += 2
                    return Arith(Word(_merge(parts), text))
            elif c == "(":
                depth += 1
            elif c == "\\" and self._peekc(1) == "\n":
                self.pos += 2
                continue
            elif c == "\\":
                n = self._peekc(1)
                parts.append(SQ(n) if n in ("$", "`", "\\") else SQ("\\"))
                self.pos += 2 if n in ("$", "`", "\\") else 1
                continue
            elif c == "$":
                parts.append(self.read_dollar("heredoc"))
                continue
            elif c == "`":
                parts.append(self.read_backquote())
                continue
            parts.append(SQ(c))
            self.pos += 1
        raise self.error("missing '))'")

    def read_brace(self, outer: str = "word") -> Part:
        src = self.src
        self.pos += 2
        if self._peekc() == "#" and self._peekc(1) not in ("}", ""):
            m = NAME_RE.match(src, self.pos + 1)
            name = m.group() if m else self._peekc(1)
            after = (m.end() if m else self.pos + 2)
            if after < len(src) and src[after] == "}" and (m or name in SPECIAL_PARAMS):
                self.pos = after + 1
                return Param(name, "#len")
        m = NAME_RE.match(src, self.pos)
        if m:
            name = m.group()
            self.pos = m.end()
        elif self._peekc() and self._peekc() in SPECIAL_PARAMS:
            name = self._peekc()
            self.pos += 1
            while name.isdigit() and self._peekc().isdigit():
                name += self._peekc()
                self.pos += 1
        else:
            raise self.error("bad substitution")
        if self._peekc() == "}":
            self.pos += 1
            return Param(name)
        for op in (":-", ":=", ":?", ":+", "##", "%%", "//", "-", "=", "?", "+", "#", "%", "/", ":"):
            if src.startswith(op, self.pos):
                self.pos += len(op)
                break
        else:
            raise self.error("bad substitution")
        if op in ("/", "//"):
            pat = self.read_parts(mode="brace", stops="/}")
            rep: tuple[Part, ...] = ()
            if self._peekc() == "/":
                self.pos += 1
                rep = self.read_parts(mode="brace", stops="}")
            self._expect_brace()
            return Param(name, op, Word(pat), Word(rep))
        if op == ":":
            off = self.read_parts(mode="brace", stops=":}")
            ln = None
            if self._peekc() == ":":
                self.pos += 1
                ln = Word(self.read_parts(mode="brace", stops="}"))
            self._expect_brace()
            return Param(name, ":", Word(off), ln)
        saved = self.sq_literal
        # "${v:-'q'}" is 'q': inside "..." a ' in the word of - = + ? is literal (in a # % pattern it quotes)
        self.sq_literal = op not in ("#", "##", "%", "%%") and (saved or outer == "dq")
        try:
            arg = self.read_parts(mode="brace", stops="}")
        finally:
            self.sq_literal = saved
        self._expect_brace()
        return Param(name, op, Word(arg))

    def _expect_brace(self) -> None:
        if self._peekc() != "}":
            raise self.error("missing '}'")
        self.pos += 1


def literal_text(word: Word) -> str | None:
    """The text of a word made only of unquoted literal characters, else None."""
    if len(word.parts) == 1 and type(word.parts[0]) is Lit:
        return word.parts[0].text
    if not word.parts:
        return None
    return None


def plain_text(word: Word) -> str:
    """The word's text with quotes removed, assuming no expansions (used for here-doc delimiters)."""
    out: list[str] = []
    for p in word.parts:
        if isinstance(p, (Lit, SQ)):
            out.append(p.text)
        elif isinstance(p, DQ):
            out.append(plain_text(Word(p.parts)))
        elif isinstance(p, Param):
            out.append("$" + p.name)
    return "".join(out)
